import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The planner API's path under the server's base URL. */
export const API_PATH = 'taskplanner/api';

/** One problem the server found in a request: the field to blame (a path) and why. */
export interface IFieldProblem {
  field: string | null;
  message: string;
}

/**
 * An error answer of the planner API: its `message`, and the `field` and `errors` of a
 * request the server refused (`{"message", "field", "errors": [...]}`).
 */
export class PlannerError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    message: string,
    readonly field: string | null,
    readonly problems: IFieldProblem[]
  ) {
    super(response, message);
  }

  /** Every problem of the answer: `errors` when given, else the one `field`/`message`. */
  get allProblems(): IFieldProblem[] {
    return this.problems.length
      ? this.problems
      : [{ field: this.field, message: this.message }];
  }
}

/** The URL of `endPoint` of the planner API (for links and downloads). */
export function apiURL(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  return URLExt.join(settings.baseUrl, API_PATH, endPoint);
}

/**
 * Call the planner API; resolves with the decoded JSON (or the text) of the answer and
 * throws a `PlannerError` carrying the server's `message` for an error status.
 */
export async function requestAPI<T>(
  endPoint = '',
  init: RequestInit = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): Promise<T> {
  const url = apiURL(endPoint, settings);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text && (response.headers.get('Content-Type') ?? '').includes('json')) {
    try {
      data = JSON.parse(text);
    } catch (error) {
      console.error('Not a JSON response body.', response);
    }
  }
  if (!response.ok) {
    const message = typeof data === 'object' && data ? data.message : data;
    throw new PlannerError(
      response,
      message || response.statusText,
      (typeof data === 'object' && data?.field) || null,
      (typeof data === 'object' &&
        Array.isArray(data?.errors) &&
        data.errors) ||
        []
    );
  }
  return data as T;
}
