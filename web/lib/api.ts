// The service's HTTP API, with sign-in tokens kept in local storage.
//
// An access token lasts minutes. When a request is rejected with 401, the
// client trades the refresh token for a new pair once and repeats the
// request. Tabs share the tokens, and a Web Lock keeps two tabs from
// spending the same refresh token, because the service treats a reused
// refresh token as stolen and ends the sign-in.

import type { ChallengeResponse, TokenResponse, User } from "./types";

const ACCESS = "torah-study.access";
const REFRESH = "torah-study.refresh";
const USER = "torah-study.user";
export const USER_KEY = USER;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

type Listener = () => void;
const signedOutListeners = new Set<Listener>();

export function onSignedOut(listener: Listener): () => void {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

function read(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function storedUser(): User | null {
  const raw = read(USER);
  if (!raw || !read(REFRESH)) return null;
  try {
    const user = JSON.parse(raw) as User;
    return typeof user?.id === "string" && typeof user?.email === "string" ? user : null;
  } catch {
    return null;
  }
}

export function saveTokens(tokens: TokenResponse): void {
  window.localStorage.setItem(ACCESS, tokens.access_token);
  window.localStorage.setItem(REFRESH, tokens.refresh_token);
  window.localStorage.setItem(USER, JSON.stringify(tokens.user));
}

export function clearTokens(): void {
  for (const key of [ACCESS, REFRESH, USER]) window.localStorage.removeItem(key);
}

function signedOut(): void {
  clearTokens();
  for (const listener of signedOutListeners) listener();
}

/** Read the message of an error reply: FastAPI's `detail`, as text. */
export async function errorMessage(response: Response): Promise<string> {
  try {
    const body = await response.json();
    const detail = body?.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail) && detail.length) {
      return detail
        .map((item: { msg?: string; loc?: unknown[] }) => {
          const field = item.loc?.[item.loc.length - 1];
          return field ? `${String(field)}: ${item.msg}` : String(item.msg);
        })
        .join("; ");
    }
  } catch {
    // Not JSON: fall through to the status text.
  }
  return response.statusText || `HTTP ${response.status}`;
}

async function withLock<T>(work: () => Promise<T>): Promise<T> {
  if (typeof navigator !== "undefined" && navigator.locks) {
    return navigator.locks.request("torah-study-refresh", work);
  }
  return work();
}

/** Get a fresh access token, unless another tab already did since `stale`. */
async function refreshTokens(stale: string | null): Promise<boolean> {
  return withLock(async () => {
    const current = read(ACCESS);
    if (current && current !== stale) return true;
    const refresh = read(REFRESH);
    if (!refresh) return false;
    const response = await fetch("/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refresh }),
    });
    if (!response.ok) return false;
    saveTokens((await response.json()) as TokenResponse);
    return true;
  });
}

/** Fetch with the access token, refreshing it once on a 401. */
export async function authorized(path: string, init: RequestInit = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
    const token = read(ACCESS);
    const headers = new Headers(init.headers);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const response = await fetch(path, { ...init, headers });
    if (response.status !== 401 || attempt > 0) {
      if (response.status === 401) signedOut();
      return response;
    }
    if (!(await refreshTokens(token))) {
      signedOut();
      return response;
    }
  }
}

export async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (init.body && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  const response = await authorized(path, { ...init, headers });
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export type SignInResult =
  | { kind: "signed_in"; user: User }
  | { kind: "code"; challenge: ChallengeResponse };

async function signInRequest(path: string, body: unknown): Promise<SignInResult> {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  const reply = await response.json();
  if (reply.status === "code_sent") return { kind: "code", challenge: reply as ChallengeResponse };
  saveTokens(reply as TokenResponse);
  return { kind: "signed_in", user: (reply as TokenResponse).user };
}

export const auth = {
  register: (email: string, password: string) =>
    signInRequest("/auth/register", { email, password }),
  login: (email: string, password: string) => signInRequest("/auth/login", { email, password }),
  verify: (challengeId: string, code: string) =>
    signInRequest("/auth/verify", { challenge_id: challengeId, code }),
  async logout(): Promise<void> {
    try {
      await authorized("/auth/logout", { method: "POST" });
    } finally {
      clearTokens();
    }
  },
};
