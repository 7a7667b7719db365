import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Root of the server extension's REST API, relative to the server's base URL. */
export const API_ROOT = 'nbml/api';

/**
 * Call an nbml endpoint and parse its JSON answer.
 *
 * Errors carry the server's message (the handlers answer `{"message": ...}`).
 */
export async function requestAPI<T>(endPoint: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, API_ROOT, endPoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ServerConnection.NetworkError(error as TypeError);
  }
  const text = await response.text();
  let data: any = text;
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      // not JSON: keep the text for the error message
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message ?? text);
  }
  return data as T;
}

/** Absolute URL of a run's page, for opening in a browser tab. */
export function runPageUrl(page: string): string {
  return URLExt.join(ServerConnection.makeSettings().baseUrl, page);
}

/** Absolute URL of an experiment's page (its runs side by side). */
export function experimentPageUrl(experiment: string): string {
  return URLExt.join(
    ServerConnection.makeSettings().baseUrl,
    'nbml/experiments',
    encodeURIComponent(experiment)
  );
}
