// Public API of tokenrec.
export type { Dataset, DataFormat, Split, SplitReport, Csr } from './data/types.js';
export { toCsr } from './data/types.js';
export { loadDataset, datasetFromSequences, datasetStats, detectFormat, DataError, type LoadOptions, type DatasetStats } from './data/load.js';
export { splitLeaveOneOut, trainingItemCounts, type SplitOptions } from './data/split.js';
export { syntheticDataset, toOpenP5Text, type SyntheticOptions, type SyntheticDataset } from './data/synthetic.js';
export { metricsFromRanks, formatMetrics, DEFAULT_KS, type Metrics } from './eval/metrics.js';
export { rankTargets, type RankOptions, type Similarity } from './eval/rank.js';
export { evaluateVectors, usersWithTarget, type EvaluateOptions, type Evaluation, type SplitName } from './eval/evaluate.js';
export { evaluatePopularity } from './baselines/pop.js';
export { backendInfo, setNumThreads, resolveBackend, type Backend, type BackendInfo } from './native/addon.js';
export { readSafetensors, writeSafetensors, type Tensor, type TensorMap } from './io/safetensors.js';
export { readManifest, type Manifest, type StageRecord } from './io/manifest.js';
export { t5Config, T5_PRESETS, type T5Config, type T5PresetName } from './t5/config.js';
export {
  Recommender,
  servingEnvironment,
  type RecommenderOptions,
  type RecommendRequest,
  type Recommendation,
  type RecommendedItem,
  type ModelInfo,
  type Scoring,
} from './serve/recommender.js';
export { RecommenderError, type ServeErrorCode } from './serve/errors.js';
export { createService, type ServiceOptions } from './serve/http.js';
