// The errors softmoe rejects with: each an `Error` subclass with a `code` and the fields that say
// what is wrong. Errors from the wasm carry a code and fields (src/web/errors.rs); `toSoftMoeError`
// turns them, and errors sent back from the worker, into these classes.

/** Every `code` a {@link SoftMoeError} can have. */
export type ErrorCode =
  | 'WEBGPU_UNAVAILABLE'
  | 'DEVICE_LOST'
  | 'WEIGHTS'
  | 'CONFIG'
  | 'INPUT'
  | 'FETCH'
  | 'DISPOSED'
  | 'DEVICE'
  | 'LIMIT'
  | 'MISSING_FEATURE'
  | 'WORKER'
  | 'INTERNAL';

/** The base class of every error softmoe throws or rejects with. */
export class SoftMoeError extends Error {
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** WebGPU was required (`backend: 'webgpu'`) and the browser gives no adapter or device. */
export class WebGpuUnavailableError extends SoftMoeError {
  /** What the browser said (no `navigator.gpu`, no adapter, the device request failed). */
  readonly reason: string;
  constructor(message: string, reason: string) {
    super(message, 'WEBGPU_UNAVAILABLE');
    this.reason = reason;
  }
}

/** The GPU device was lost during the call (driver reset, `device.destroy()`, out of memory). The
 * model re-creates it on the next call, or moves to the CPU and fires `backendchange`. */
export class DeviceLostError extends SoftMoeError {
  readonly reason: string;
  constructor(message: string, reason: string) {
    super(message, 'DEVICE_LOST');
    this.reason = reason;
  }
}

/** The weights file is not what the model needs: not safetensors, a tensor missing, of the wrong
 * dtype or shape, or holding NaN/Inf. Names the file and, where one is at fault, the tensor. */
export class WeightsError extends SoftMoeError {
  /** The file (its URL, when loaded from one). */
  readonly file: string;
  /** The tensor at fault, or null when the file as a whole is (not safetensors). */
  readonly tensor: string | null;
  /** What the tensor should be (a dtype or shape), where that is the problem. */
  readonly expected: string | null;
  readonly found: string | null;
  constructor(message: string, file: string, tensor: string | null, expected: string | null = null, found: string | null = null) {
    super(message, 'WEIGHTS');
    this.file = file;
    this.tensor = tensor;
    this.expected = expected;
    this.found = found;
  }
}

/** config.json is malformed or holds a value softmoe does not support; names the file and key. */
export class ConfigError extends SoftMoeError {
  readonly file: string;
  /** The key at fault, or null when the file is not JSON at all. */
  readonly key: string | null;
  readonly expected: string | null;
  readonly found: string | null;
  constructor(message: string, file: string, key: string | null, expected: string | null = null, found: string | null = null) {
    super(message, 'CONFIG');
    this.file = file;
    this.key = key;
    this.expected = expected;
    this.found = found;
  }
}

/** An argument of the wrong type, size or range: an image, a batch, pixels outside [0, 1], an
 * unknown option. Names what was expected and, for tensors, the expected shape. */
export class InputError extends SoftMoeError {
  /** What was expected, in words ("a Float32Array", "b·784 values", "values in [0, 1]"). */
  readonly expected: string;
  /** The expected shape where the input is a tensor: numbers, and "b" (or "batch") for any size. */
  readonly expectedShape: (number | string)[] | null;
  constructor(message: string, expected: string, expectedShape: (number | string)[] | null = null) {
    super(message, 'INPUT');
    this.expected = expected;
    this.expectedShape = expectedShape;
  }
}

/** A model file could not be fetched: a network error or an HTTP status other than 2xx. */
export class FetchError extends SoftMoeError {
  readonly url: string;
  /** The HTTP status, or null for a network error. */
  readonly status: number | null;
  constructor(message: string, url: string, status: number | null) {
    super(message, 'FETCH');
    this.url = url;
    this.status = status;
  }
}

/** The model or layer was disposed (`dispose()` or `using`); it cannot be used any more. */
export class DisposedError extends SoftMoeError {
  constructor(message: string) {
    super(message, 'DISPOSED');
  }
}

/** An error as plain data, as it crosses to and from the worker. */
export interface PlainError {
  message: string;
  code?: string;
  [field: string]: unknown;
}

const FIELDS = ['reason', 'file', 'tensor', 'key', 'expected', 'found', 'expectedShape', 'url', 'status', 'what', 'during', 'feature', 'limit'];

/** `e` as plain data (message, code and the fields of its class). */
export function toPlain(e: unknown): PlainError {
  if (e && typeof e === 'object' && 'message' in e) {
    const src = e as Record<string, unknown>;
    const out: PlainError = { message: String(src.message), code: typeof src.code === 'string' ? src.code : undefined };
    for (const f of FIELDS) if (src[f] !== undefined) out[f] = src[f];
    return out;
  }
  return { message: String(e) };
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

/** Any error (from the wasm, the worker or JS) as the {@link SoftMoeError} subclass of its code. */
export function toSoftMoeError(e: unknown): SoftMoeError {
  if (e instanceof SoftMoeError) return e;
  const p = toPlain(e);
  const m = p.message;
  let out: SoftMoeError;
  switch (p.code) {
    case 'WEBGPU_UNAVAILABLE': out = new WebGpuUnavailableError(m, str(p.reason) ?? m); break;
    case 'DEVICE_LOST': out = new DeviceLostError(m, str(p.reason) ?? m); break;
    case 'WEIGHTS': out = new WeightsError(m, str(p.file) ?? '', str(p.tensor), str(p.expected), str(p.found)); break;
    case 'CONFIG': out = new ConfigError(m, str(p.file) ?? '', str(p.key), str(p.expected), str(p.found)); break;
    case 'INPUT': out = new InputError(m, str(p.expected) ?? '', Array.isArray(p.expectedShape) ? (p.expectedShape as (number | string)[]) : null); break;
    case 'FETCH': out = new FetchError(m, str(p.url) ?? '', typeof p.status === 'number' ? p.status : null); break;
    case 'DISPOSED': out = new DisposedError(m); break;
    case 'DEVICE': case 'LIMIT': case 'MISSING_FEATURE': case 'WORKER': case 'INTERNAL':
      out = new SoftMoeError(m, p.code); break;
    default: out = new SoftMoeError(m, 'INTERNAL', { cause: e });
  }
  // Fields a class does not declare (a device error's `during`, a limit's name) stay readable.
  for (const f of FIELDS) if (p[f] !== undefined && !(f in out)) Object.defineProperty(out, f, { value: p[f], enumerable: true });
  return out;
}
