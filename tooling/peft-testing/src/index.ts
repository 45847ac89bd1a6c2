// Test support shared by the @peft packages' tests and fixture scripts (private, imported as source).
// Checks that use vitest's `expect` are in `@peft/testing/assertions`.
export { causalLMLoss, logitsOf, randomTokenIds } from './causal_lm.js';
export { maxAbsDiff, type Values } from './max_abs_diff.js';
export {
  expectedHeader,
  fileSha256,
  fixtureModelName,
  loadFixtureModel,
  MODEL_FIXTURES,
  roundedLogits,
} from './model_fixtures.js';
export {
  type OursCase,
  type OursTechnique,
  trainOnRandomTokens,
  writeOursFixtures,
} from './ours_fixtures.js';
export { languageModelLoss, parameterValues, ToyLM, tokenIds, toyLMWithBaseOf } from './toy_lm.js';
