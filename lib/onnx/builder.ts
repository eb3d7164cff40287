// A small helper for writing ONNX graphs by hand with onnx-proto (protobufjs). It keeps the
// bookkeeping (unique value names, initializers as raw little-endian bytes, typed attributes,
// graph inputs/outputs with symbolic dimensions) in one place so that graph code reads like the
// model it describes. Used by the T5 export and, later, the beam-search decoder-step graph.
import onnxProto from 'onnx-proto';

export const onnx = onnxProto.onnx;
type IAttributeProto = onnxProto.onnx.IAttributeProto;
type INodeProto = onnxProto.onnx.INodeProto;
type ITensorProto = onnxProto.onnx.ITensorProto;
type IValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** Element types this builder writes (values of onnx.TensorProto.DataType). */
export const DType = {
  float: 1,
  int32: 6,
  int64: 7,
  bool: 9,
} as const;
export type DTypeName = keyof typeof DType;

/** A dimension of a graph input/output: a fixed size, or a symbolic name such as 'batch'. */
export type Dim = number | string;

/** Attribute values. Plain integers are INT and integer arrays INTS; floats must be wrapped. */
export type AttrValue =
  | number
  | number[]
  | string
  | { float: number }
  | { floats: number[] }
  | { tensor: ITensorProto };

export function floatAttr(x: number): { float: number } {
  return { float: x };
}

function toAttribute(name: string, v: AttrValue): IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError(`attribute '${name}': ${v} is not an integer; wrap floats with floatAttr()`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) {
    if (!v.every(Number.isInteger)) throw new TypeError(`attribute '${name}': INTS must be integers`);
    return { name, type: T.INTS, ints: v };
  }
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.TENSOR, t: v.tensor };
}

function bytesOf(a: Float32Array | Int32Array | BigInt64Array | Uint8Array): Uint8Array {
  // ONNX raw_data is little-endian; so are the typed arrays on every platform Node runs on.
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function valueInfo(name: string, dtype: DTypeName, dims: Dim[]): IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: DType[dtype],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface ModelOptions {
  /** Default opset of the ai.onnx domain (17: the last one whose Reduce* ops take `axes` as an attribute). */
  opset?: number;
  producerName?: string;
  producerVersion?: string;
  docString?: string;
  /** Stored in the model's metadata_props (readable by any ONNX tool). */
  metadata?: Record<string, string>;
}

export class GraphBuilder {
  readonly nodes: INodeProto[] = [];
  readonly initializers: ITensorProto[] = [];
  readonly inputs: IValueInfoProto[] = [];
  readonly outputs: IValueInfoProto[] = [];
  /** Shape annotations of intermediate values (optional; ONNX Runtime infers shapes itself). */
  readonly valueInfos: IValueInfoProto[] = [];
  private readonly names = new Set<string>();
  private counter = 0;
  private readonly constCache = new Map<string, string>();

  constructor(readonly name: string) {}

  /** A fresh value name derived from `hint` (hints keep graphs readable in Netron). */
  fresh(hint: string): string {
    let n = hint;
    while (this.names.has(n)) n = `${hint}_${++this.counter}`;
    this.names.add(n);
    return n;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph '${this.name}': value name '${name}' is already used`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DTypeName, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), dtype, dims));
    return name;
  }

  /** Declares `value` as a graph output under `name` (an Identity node renames it when needed). */
  output(value: string, name: string, dtype: DTypeName, dims: Dim[]): string {
    if (value !== name) this.node('Identity', [value], {}, { outputs: [this.claim(name)] });
    this.outputs.push(valueInfo(name, dtype, dims));
    return name;
  }

  /** Annotates an intermediate value with its type and shape (documentation for tools such as Netron). */
  annotate(value: string, dtype: DTypeName, dims: Dim[]): string {
    if (!this.names.has(value)) throw new Error(`ONNX graph '${this.name}': cannot annotate unknown value '${value}'`);
    this.valueInfos.push(valueInfo(value, dtype, dims));
    return value;
  }

  /** An initializer holding `data` with shape `dims` (raw bytes). */
  initializer(name: string, dims: number[], data: Float32Array | Int32Array | BigInt64Array | Uint8Array, dtype?: DTypeName): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new RangeError(`initializer '${name}': shape [${dims}] holds ${n} values but data has ${data.length}`);
    const dt: DTypeName =
      dtype ?? (data instanceof Float32Array ? 'float' : data instanceof Int32Array ? 'int32' : data instanceof BigInt64Array ? 'int64' : 'bool');
    this.initializers.push({ name: this.claim(name), dims, dataType: DType[dt], rawData: bytesOf(data) });
    return name;
  }

  /** An initializer under a fresh name derived from `hint`. */
  constant(hint: string, dims: number[], data: Float32Array | Int32Array | BigInt64Array | Uint8Array, dtype?: DTypeName): string {
    const name = this.fresh(hint);
    this.names.delete(name);
    return this.initializer(name, dims, data, dtype);
  }

  /** An int64 constant (cached: the same values give the same initializer). */
  int64(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims}:${values}`;
    let n = this.constCache.get(key);
    if (!n) {
      n = this.constant(`const_i64_${values.length === 1 ? values[0] : 'v'}`, dims, BigInt64Array.from(values, BigInt));
      this.constCache.set(key, n);
    }
    return n;
  }

  /** A float constant; a scalar (rank 0) unless dims are given. */
  float(values: number | number[], dims?: number[]): string {
    const arr = typeof values === 'number' ? [values] : values;
    const shape = dims ?? (typeof values === 'number' ? [] : [arr.length]);
    const key = `f32:${shape}:${arr}`;
    let n = this.constCache.get(key);
    if (!n) {
      n = this.constant('const_f32', shape, Float32Array.from(arr));
      this.constCache.set(key, n);
    }
    return n;
  }

  /**
   * Adds a node. Returns its output names: `opts.outputs` when given, otherwise `nOutputs`
   * fresh names derived from `opts.name` or the op type.
   */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: { outputs?: string[]; nOutputs?: number; name?: string; domain?: string } = {}): string[] {
    const hint = opts.name ?? opType.toLowerCase();
    const outputs = opts.outputs ?? Array.from({ length: opts.nOutputs ?? 1 }, (_, i) => this.fresh(opts.nOutputs && opts.nOutputs > 1 ? `${hint}_out${i}` : hint));
    const attribute = Object.entries(attrs).map(([k, v]) => toAttribute(k, v));
    this.nodes.push({ opType, input: inputs, output: outputs, name: this.fresh(`${hint}_node`), attribute, domain: opts.domain ?? '' });
    return outputs;
  }

  /** A node with a single output; returns its name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): string {
    return this.node(opType, inputs, attrs, { name })[0];
  }

  /** Serialises the graph as an ONNX ModelProto (IR version 8). */
  toModel(opts: ModelOptions = {}): Uint8Array {
    if (this.outputs.length === 0) throw new Error(`ONNX graph '${this.name}' has no outputs`);
    const model = onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: opts.opset ?? 17 }],
      producerName: opts.producerName ?? 'tokenrec',
      producerVersion: opts.producerVersion ?? '',
      docString: opts.docString ?? '',
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers,
        input: this.inputs,
        output: this.outputs,
        valueInfo: this.valueInfos,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

/** Decodes a model (for inspection and tests). */
export function decodeModel(bytes: Uint8Array): onnxProto.onnx.ModelProto {
  return onnx.ModelProto.decode(bytes);
}
