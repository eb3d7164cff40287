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
// Stage 0: collaborative vectors.
export { trainCf, evaluateCf } from './cf/train.js';
export { FoldInContext, foldInUsers, withUsersIncluded } from './cf/foldin.js';
export { loadCfStage, saveCfStage } from './cf/store.js';
// Stage 1: MQ-Tokenizers.
export * from './tokenizer/index.js';
export { loadTokenizerCodes } from './tokenizer/codes.js';
// Stage 2: T5 backbone and LLM4Rec.
export { T5Model, padSequences } from './t5/model.js';
export { exportT5Onnx } from './t5/onnx-export.js';
export { LLM4Rec, promptTokens, padPrompts, type Codes } from './llm/model.js';
export { Vocabulary } from './llm/vocab.js';
export { trainLLM, evaluateLLM, DEFAULT_LLM_TRAIN, LLM_SCORINGS, type LLMScoring, type LLMTrainOptions } from './llm/train.js';
export { ItemBias, biasedItemRows, biasedQueryRows } from './llm/bias.js';
export { runLLMStage, loadLLMStage, DEFAULT_LLM_STAGE, type LLMStageConfig } from './llm/stage.js';
// The autoregressive beam-search baseline.
export { ARRec } from './ar/model.js';
export { CodeTrie } from './ar/trie.js';
export { beamSearch } from './ar/beam.js';
export { trainARStage, loadARStage } from './ar/stage.js';
// Retrieval and ONNX Runtime.
export { ItemIndex, type TopKResult } from './retrieval/topk.js';
export { FaissIndex, faissAvailable } from './retrieval/faiss.js';
export { OnnxSession } from './onnx/session.js';
export { OnnxWorkerSession } from './onnx/worker-session.js';
