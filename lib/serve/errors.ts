// Errors of the serving layer. Each carries a stable `code` and the HTTP status the service
// answers with, so that callers (and lib/serve/http.ts) never parse messages.

export type ServeErrorCode =
  | 'ERR_TOKENREC_UNKNOWN_USER'
  | 'ERR_TOKENREC_UNKNOWN_ITEM'
  | 'ERR_TOKENREC_BAD_REQUEST'
  | 'ERR_TOKENREC_DUPLICATE_ID'
  | 'ERR_TOKENREC_DISPOSED'
  | 'ERR_TOKENREC_OVERLOADED';

const STATUS: Record<ServeErrorCode, number> = {
  ERR_TOKENREC_UNKNOWN_USER: 404,
  ERR_TOKENREC_UNKNOWN_ITEM: 400,
  ERR_TOKENREC_BAD_REQUEST: 400,
  ERR_TOKENREC_DUPLICATE_ID: 409,
  ERR_TOKENREC_DISPOSED: 503,
  ERR_TOKENREC_OVERLOADED: 503,
};

export class RecommenderError extends Error {
  readonly code: ServeErrorCode;
  /** HTTP status for this error (404 unknown user, 400 bad input, 409 duplicate id, 503 disposed or overloaded). */
  readonly statusCode: number;

  constructor(code: ServeErrorCode, message: string) {
    super(message);
    this.name = 'RecommenderError';
    this.code = code;
    this.statusCode = STATUS[code];
  }
}

export function badRequest(message: string): RecommenderError {
  return new RecommenderError('ERR_TOKENREC_BAD_REQUEST', message);
}
