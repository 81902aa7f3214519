// Reads the server-sent events of a streamed answer from a fetch response.
// EventSource cannot send a POST body or an Authorization header, so the
// stream is parsed here.

import { ApiError, authorized, errorMessage } from "./api";

export type StreamEvent = { event: string; data: unknown };

/** Split an SSE byte stream into events; comment lines (keep-alives) are skipped. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<StreamEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let pending = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      // A CR at the end of a chunk may be the first half of a CRLF, so it
      // waits for the next chunk before line endings are normalised.
      let text = pending + decoder.decode(value, { stream: true });
      pending = text.endsWith("\r") ? "\r" : "";
      if (pending) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, "\n");
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const parsed = parseBlock(block);
        if (parsed) yield parsed;
      }
    }
    const last = parseBlock(buffer + pending.replace("\r", "\n"));
    if (last) yield last;
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block: string): StreamEvent | null {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}

/** Ask a question in a conversation and yield the answer's events. */
export async function* askStream(
  conversationId: string,
  content: string,
  signal: AbortSignal,
): AsyncGenerator<StreamEvent> {
  const response = await authorized(
    `/conversations/${encodeURIComponent(conversationId)}/messages?stream=true`,
    {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ content }),
      signal,
    },
  );
  if (!response.ok || !response.body) {
    throw new ApiError(response.status, await errorMessage(response));
  }
  if (!response.headers.get("Content-Type")?.startsWith("text/event-stream")) {
    // A proxy or portal replied in the service's place.
    const type = response.headers.get("Content-Type") ?? "none";
    throw new ApiError(response.status, `Expected an event stream, got HTTP ${response.status} with Content-Type ${type}.`);
  }
  yield* readEvents(response.body);
}
