// The page's only way to the box: fetch() on /api, errors turned into readable messages.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// Every state-changing request carries this header: a cross-site form or image
// cannot set it, and the box refuses cookie-authenticated cross-site requests.
const CSRF_HEADER = { "X-Slicebox-Request": "web" };

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.error === "string") message = body.error;
      else if (body && typeof body.message === "string") message = body.message;
    } catch (_) {
      if (text && text.length < 300 && !text.trim().startsWith("<")) message = text.trim();
    }
  } catch (_) { /* body unreadable: keep the status line */ }
  if (response.status === 401) message = "Your session has ended: please log in again.";
  if (response.status === 403) message = `Not allowed: ${message}`;
  return new ApiError(response.status, message);
}

export async function request(method, path, { json, body, headers, raw } = {}) {
  const init = { method, credentials: "same-origin", headers: { ...(headers || {}) } };
  if (method !== "GET" && method !== "HEAD") Object.assign(init.headers, CSRF_HEADER);
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch("/api" + path, init);
  } catch (exc) {
    throw new ApiError(0, "The box cannot be reached (network error).");
  }
  if (!response.ok) throw await errorOf(response);
  if (raw) return response;
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    return text;
  }
}

export const get = (path) => request("GET", path);
export const post = (path, json) => request("POST", path, { json });
export const put = (path, json) => request("PUT", path, { json });
export const del = (path) => request("DELETE", path);

export function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(value)}`);
  }
  return parts.length ? "?" + parts.join("&") : "";
}

// Upload one file with progress (fetch has no upload progress): resolves to
// {status, body} for 2xx and 4xx alike, so callers can count rejections.
export function upload(path, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api" + path);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("X-Slicebox-Request", "web");
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      resolve({ status: xhr.status, body });
    };
    xhr.onerror = () => reject(new ApiError(0, "The box cannot be reached (network error)."));
    xhr.send(file);
  });
}
