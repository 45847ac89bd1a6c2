// The module worker of one training replica (training on several threads): core's replica loop
// serving `replica.ts`'s setup on this worker's scope.
import { serveDataParallelReplica } from '@peft/core';
import { setup } from './replica.js';

serveDataParallelReplica(setup);
