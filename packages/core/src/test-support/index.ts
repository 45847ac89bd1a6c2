// Helpers shared by tests (not part of the published package).

export * from './evaluate_with_gradients.js';
export * from './finite_differences.js';
export * from './relative_error.js';
export * from './seeded_random.js';
export * from './transformer_block.js';
