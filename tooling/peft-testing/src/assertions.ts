// Checks shared by the technique packages' tests, written with vitest's `expect` (import them from
// tests only): PEFT-parity fixtures (the pinned base model, PEFT's recorded verdict on our files) and
// the behaviour every layer technique shares on the toy model (merging, disabling, training).

export {
  expectDisablingGivesBase,
  expectGradientsOnlyFor,
  expectMergingMatchesAdapter,
  expectOnlyAdapterTensorsTrain,
  expectSafeMergeRefusesNaN,
  frozenWeightShapes,
} from './adapter_behaviour.js';
export {
  type AdapterFixture,
  expectPeftWrittenAdapters,
  loadAdapterFixture,
} from './adapter_fixtures.js';
export { expectPeftCheck, loadPinnedFixtureModel, type PeftCheck } from './peft_check.js';
