// Errors of the API as the console shows them: RFC 9457 problem+json kept whole.

export class ApiError extends Error {
  constructor(status, problem) {
    const p = problem && typeof problem === 'object' ? problem : {};
    super(p.detail || p.title || `The request failed (${status}).`);
    this.name = 'ApiError';
    this.status = status;
    this.problem = p;
    this.title = p.title || 'Error';
    this.detail = p.detail || '';
    this.errors = Array.isArray(p.errors) ? p.errors : [];
  }

  static async from(resp) {
    let problem = {};
    const type = resp.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        problem = await resp.json();
      } catch {
        problem = {};
      }
    }
    if (!problem || typeof problem !== 'object') problem = {};
    return new ApiError(resp.status, { title: resp.statusText || 'Error', ...problem });
  }

  static network(cause) {
    const err = new ApiError(0, {
      title: 'Network error',
      detail: 'The server could not be reached; check your connection and try again.',
    });
    err.cause = cause;
    return err;
  }
}
