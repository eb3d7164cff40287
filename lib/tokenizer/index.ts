// MQ-Tokenizer (TokenRec stage 1): public API.
export { DEFAULT_TOKENIZER_CONFIG, resolveTokenizerConfig, type TokenizerConfig, type TokenizerConfigInput } from './config.js';
export { Tokenizer } from './model.js';
export { trainTokenizer, type TrainedTokenizer, type TokenizerStats, type TokenizerEpochRecord, type TokenizerProgressEvent, type TrainTokenizerOptions, type ReconstructionStats } from './train.js';
export { assignUniqueCodes, tokenizerDistances, type AssignmentStats } from './assign.js';
export { codebookStats, collisionStats, disambiguate, type CodebookStats, type CollisionStats } from './stats.js';
export { vqNearest, vqNearestNaive, codewordDistances, kmeans, type VqNearestOptions } from './vq.js';
export { runTokenizerStage, tokenizerCliOptions, TOKENIZER_STAGE, type TokenizerStageOptions, type TokenizerStageResult } from './stage.js';
