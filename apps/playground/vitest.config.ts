import { peftProject } from '../../tooling/vitest.shared.ts';

export default peftProject('playground');
