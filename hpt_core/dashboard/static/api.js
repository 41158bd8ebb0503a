// The JSON API under /api/v1 (see docs/dashboard-api.md). The token (for pause/cancel) lives only in
// this page's memory: it is never stored or put in a URL.

let token = "";

export function setToken(value) {
  token = value.trim();
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function request(method, path, params) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET" && token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { method, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail))
      : response.statusText;
    throw new ApiError(response.status, detail);
  }
  return body;
}

export const api = {
  get: (path, params) => request("GET", path, params),
  post: (path) => request("POST", path),
};
