"use client";

// The signed-in app: the sidebar of conversations, the conversation with its
// streamed answers, and the source panel.

import { Download, Menu, Send, Square } from "lucide-react";
import { useCallback, useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";

import { MessageView } from "@/components/message";
import { ParashahCard } from "@/components/parashah-card";
import { Sidebar } from "@/components/sidebar";
import { SourcePanel } from "@/components/source-panel";
import { Button } from "@/components/ui/button";
import { Textarea } from "@/components/ui/input";
import { ApiError, api, authorized } from "@/lib/api";
import { useI18n } from "@/lib/i18n";
import { askStream, type StreamEvent } from "@/lib/stream";
import type { Conversation, ConversationDetail, ConversationPage, Message, Source, User, Verification } from "@/lib/types";
import { sefariaUrl, useMediaQuery } from "@/lib/utils";

const DIASPORA = "torah-study.diaspora";
const PAGE_SIZE = 50;
const STOP_GRACE_MS = 500;
// The service accepts questions of at most this many characters.
const QUESTION_LIMIT = 2000;
// Conversation ids are 32 hexadecimal digits; anything else is not fetched.
const CONVERSATION_ID = /^[0-9a-f]{32}$/;

type Panel = { messageId: string; rank: number | null };

/** The ids of a question and answer while the answer streams. */
type LiveTurn = {
  conversationId: string;
  questionId: string;
  answerId: string;
  ended: boolean;
  rejected?: boolean;
};

type LiveSource = {
  n: number;
  ref: string;
  he_ref: string;
  he: string;
  en: string;
  book: string;
  categories: string[];
};

function urlParam(name: string): string | null {
  return new URLSearchParams(window.location.search).get(name);
}

function setUrlConversation(id: string | null, push: boolean): void {
  const url = new URL(window.location.href);
  if (id) url.searchParams.set("c", id);
  else url.searchParams.delete("c");
  if (url.href === window.location.href) return;
  if (push) window.history.pushState(null, "", url);
  else window.history.replaceState(null, "", url);
}

export function ChatApp({ user, onSignOut }: { user: User; onSignOut: () => void }) {
  const { t } = useI18n();
  const [conversations, setConversations] = useState<Conversation[]>([]);
  const [activeId, setActiveId] = useState<string | null>(null);
  const [activeTitle, setActiveTitle] = useState<string | null>(null);
  const [messages, setMessages] = useState<Message[]>([]);
  const [liveId, setLiveId] = useState<string | null>(null);
  const [panel, setPanel] = useState<Panel | null>(null);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [sidebarOpen, setSidebarOpen] = useState(false);
  const [diaspora, setDiaspora] = useState<boolean | null>(null);
  const [calendar, setCalendar] = useState<boolean | null>(null);
  const [status, setStatus] = useState("");
  const abort = useRef<AbortController | null>(null);
  // Set at once when a question is sent, so a double submit sends it once.
  const sending = useRef(false);
  const sentAt = useRef(0);
  const composer = useRef<HTMLTextAreaElement>(null);
  const bottom = useRef<HTMLDivElement>(null);
  const opener = useRef<HTMLElement | null>(null);
  const menuButton = useRef<HTMLButtonElement>(null);
  const panelBeside = useMediaQuery("(min-width: 1024px)");
  const sidebarBeside = useMediaQuery("(min-width: 768px)");
  // On narrow screens the open sidebar or panel covers the page, so the page
  // behind it leaves the tab order.
  const panelCovers = panel !== null && !panelBeside;
  const sidebarCovers = sidebarOpen && !sidebarBeside;

  const [nextCursor, setNextCursor] = useState<string | null>(null);

  const loadList = useCallback(async () => {
    const page = await api<ConversationPage>(`/conversations?limit=${PAGE_SIZE}`);
    setConversations(page.items);
    setNextCursor(page.next_cursor);
  }, []);

  async function loadMore() {
    if (!nextCursor) return;
    try {
      const page = await api<ConversationPage>(
        `/conversations?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(nextCursor)}`,
      );
      setConversations((current) => {
        const known = new Set(current.map((c) => c.id));
        return [...current, ...page.items.filter((c) => !known.has(c.id))];
      });
      setNextCursor(page.next_cursor);
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : String(problem));
    }
  }

  const open = useCallback(async (id: string | null, push = true) => {
    // TODO: leaving a conversation stops its streaming answer, because the
    // service stops generating when the reader goes away.
    abort.current?.abort();
    setPanel(null);
    setError(null);
    setActiveId(id);
    setActiveTitle(null);
    setUrlConversation(id, push);
    setSidebarOpen(false);
    if (!id) {
      setMessages([]);
      composer.current?.focus();
      return;
    }
    try {
      if (!CONVERSATION_ID.test(id)) throw new ApiError(404, t.notFound);
      const detail = await api<ConversationDetail>(`/conversations/${encodeURIComponent(id)}`);
      if (!Array.isArray(detail?.messages)) throw new ApiError(404, t.notFound);
      setMessages(detail.messages);
      setActiveTitle(detail.title);
    } catch (problem) {
      // Start a new conversation instead of leaving one that cannot be used.
      if (problem instanceof ApiError && problem.status === 404) {
        setConversations((current) => current.filter((c) => c.id !== id));
      }
      setMessages([]);
      setActiveId(null);
      setUrlConversation(null, false);
      setError(problem instanceof ApiError && problem.status === 404 ? t.notFound : String(problem));
    }
  }, [t.notFound]);

  useEffect(() => {
    const saved = window.localStorage.getItem(DIASPORA);
    if (saved === "true" || saved === "false") setDiaspora(saved === "true");
    void loadList().catch((problem) => setError(String(problem)));
    void open(urlParam("c"), false);
    const onPop = () => void open(urlParam("c"), false);
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
    // Runs once, when the signed-in app appears.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    bottom.current?.scrollIntoView({ block: "end" });
  }, [messages]);

  useEffect(() => {
    function onKey(event: globalThis.KeyboardEvent) {
      if (event.key === "Escape" && panel && !event.defaultPrevented) closePanel();
    }
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [panel]);

  /** Open the source panel, remembering which control to focus when it closes. */
  function showSources(messageId: string, rank: number | null) {
    if (document.activeElement instanceof HTMLElement) opener.current = document.activeElement;
    setPanel({ messageId, rank });
  }

  const closeSidebar = useCallback(() => {
    setSidebarOpen(false);
    window.setTimeout(() => menuButton.current?.focus(), 0);
  }, []);

  function closePanel() {
    setPanel(null);
    const back = opener.current;
    opener.current = null;
    window.setTimeout(() => (back?.isConnected ? back : composer.current)?.focus(), 0);
  }

  function patch(id: string, change: (message: Message) => Message) {
    setMessages((current) => current.map((m) => (m.id === id ? change(m) : m)));
  }

  /** Apply one event of a streamed answer to the messages on screen. */
  function apply({ event, data }: StreamEvent, turn: LiveTurn) {
    const id = turn.answerId;
    if (event === "turn") {
      const opening = data as { user_message_id: string; assistant_message_id: string; title: string | null };
      turn.answerId = opening.assistant_message_id;
      setLiveId(turn.answerId);
      setMessages((current) =>
        current.map((m) => {
          if (m.id === turn.questionId) return { ...m, id: opening.user_message_id };
          if (m.id === id) return { ...m, id: opening.assistant_message_id };
          return m;
        }),
      );
      if (opening.title) {
        const title = opening.title;
        setConversations((current) => current.map((c) => (c.id === turn.conversationId ? { ...c, title } : c)));
      }
    } else if (event === "sources") {
      const payload = data as { sources: LiveSource[]; mode: string };
      const sources: Source[] = payload.sources.map((s) => ({
        rank: s.n,
        ref: s.ref,
        he_ref: s.he_ref || null,
        book: s.book,
        category: s.categories?.[0] ?? null,
        verified: null,
        url: sefariaUrl(s.ref),
        he: s.he,
        en: s.en,
      }));
      patch(id, (m) => ({ ...m, sources, mode: payload.mode }));
    } else if (event === "token") {
      const piece = String(data);
      patch(id, (m) => ({ ...m, content: m.content + piece }));
    } else if (event === "verification") {
      const report = data as Verification;
      const cited = new Set(report.citations ?? []);
      patch(id, (m) => ({
        ...m,
        verification: report,
        sources: m.sources.map((s) => ({ ...s, verified: cited.has(s.rank) })),
      }));
    } else if (event === "done") {
      const done = data as { answer: string; mode: string; provider: string };
      turn.ended = true;
      patch(id, (m) => ({ ...m, status: "complete", content: done.answer, mode: done.mode, provider: done.provider }));
    } else if (event === "error") {
      const failure = data as { message: string };
      turn.ended = true;
      patch(id, (m) => ({ ...m, status: m.content ? "interrupted" : "failed", error: failure.message }));
    }
  }

  async function ask(question: string) {
    const content = question.trim();
    if (!content || sending.current) return;
    sending.current = true;
    sentAt.current = Date.now();
    try {
      await send(content);
    } finally {
      sending.current = false;
    }
  }

  async function send(content: string) {
    setError(null);
    let conversationId = activeId;
    try {
      if (!conversationId) {
        const created = await api<Conversation>("/conversations", { method: "POST", body: "{}" });
        conversationId = created.id;
        setActiveId(created.id);
        setUrlConversation(created.id, true);
        setActiveTitle(null);
        setConversations((current) => [created, ...current]);
      }
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : String(problem));
      return;
    }

    const questionId = `local-q-${Date.now()}`;
    const answerId = `local-a-${Date.now()}`;
    const blank = {
      status: "complete" as const,
      mode: null,
      provider: null,
      error: null,
      verification: null,
      feedback: null,
      sources: [],
    };
    setMessages((current) => [
      ...current,
      { ...blank, id: questionId, role: "user", content },
      { ...blank, id: answerId, role: "assistant", content: "", status: "streaming" },
    ]);
    setDraft("");

    setLiveId(answerId);
    setStatus(t.thinking);
    const controller = new AbortController();
    abort.current = controller;

    const turn: LiveTurn = { conversationId, questionId, answerId, ended: false };
    try {
      for await (const streamEvent of askStream(conversationId, content, controller.signal)) {
        apply(streamEvent, turn);
      }
      if (turn.answerId === answerId) throw new Error(t.noReply);
      if (!turn.ended) {
        const id = turn.answerId;
        patch(id, (m) => ({ ...m, status: "interrupted" }));
      }
    } catch (problem) {
      const id = turn.answerId;
      if (id === answerId && !controller.signal.aborted) {
        // Rejected before the service saved anything: put the question back
        // into the box and show the error.
        setMessages((current) => current.filter((m) => m.id !== questionId && m.id !== answerId));
        setDraft((current) => current || content);
        setError(problem instanceof Error ? problem.message : String(problem));
        turn.rejected = true;
      } else if (controller.signal.aborted) {
        patch(id, (m) => ({ ...m, status: "interrupted", sources: m.sources.map((s) => ({ ...s, verified: s.verified ?? false })) }));
      } else {
        const message = problem instanceof Error ? problem.message : String(problem);
        patch(id, (m) => ({ ...m, status: m.content ? "interrupted" : "failed", error: message }));
      }
    } finally {
      abort.current = null;
      setLiveId(null);
      setStatus("");
    }

    if (controller.signal.aborted || turn.rejected) return;
    // Read back what the service saved: ids, verified sources, title.
    try {
      const detail = await api<ConversationDetail>(`/conversations/${encodeURIComponent(conversationId)}`);
      setMessages((current) => mergeSaved(current, detail.messages));
      setActiveTitle(detail.title);
      const { messages: _, ...summary } = detail;
      setConversations((current) => [summary, ...current.filter((c) => c.id !== summary.id)]);
    } catch {
      // Keep what the stream showed.
    }
  }

  function stop() {
    // The Stop button appears where Send was, so the second click of a
    // double click on Send must not stop the answer it just asked for.
    if (Date.now() - sentAt.current < STOP_GRACE_MS) return;
    abort.current?.abort();
  }

  async function rate(message: Message, rating: "up" | "down" | null) {
    const path = `/messages/${encodeURIComponent(message.id)}/feedback`;
    try {
      if (rating) await api(path, { method: "PUT", body: JSON.stringify({ rating }) });
      else await api(path, { method: "DELETE" });
      patch(message.id, (m) => ({ ...m, feedback: rating }));
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : String(problem));
    }
  }

  async function exportMarkdown() {
    if (!activeId) return;
    const response = await authorized(`/conversations/${encodeURIComponent(activeId)}/export`);
    if (!response.ok) {
      setError(`${t.errorTitle}: HTTP ${response.status}`);
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = document.createElement("a");
    link.href = url;
    link.download = `conversation-${activeId}.md`;
    document.body.appendChild(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  async function rename(id: string, title: string) {
    const updated = await api<Conversation>(`/conversations/${encodeURIComponent(id)}`, {
      method: "PATCH",
      body: JSON.stringify({ title }),
    });
    setConversations((current) => current.map((c) => (c.id === id ? updated : c)));
    if (id === activeId) setActiveTitle(updated.title);
  }

  async function remove(id: string) {
    try {
      await api(`/conversations/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (problem) {
      if (!(problem instanceof ApiError && problem.status === 404)) {
        setError(problem instanceof Error ? problem.message : String(problem));
        return;
      }
    }
    setConversations((current) => current.filter((c) => c.id !== id));
    if (id === activeId) void open(null);
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    void ask(draft);
  }

  function onComposerKey(event: KeyboardEvent<HTMLTextAreaElement>) {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void ask(draft);
    }
  }

  const panelMessage = panel ? messages.find((m) => m.id === panel.messageId) : undefined;
  const active = conversations.find((c) => c.id === activeId);
  const lastAssistant = [...messages].reverse().find((m) => m.role === "assistant");

  return (
    <div className="flex h-full">
      <a href="#question" className="sr-only focus:not-sr-only focus:absolute focus:start-2 focus:top-2 focus:z-50 focus:rounded focus:bg-background focus:p-2">
        {t.skipToQuestion}
      </a>
      {sidebarOpen && (
        <div className="fixed inset-0 z-30 bg-black/40 md:hidden" aria-hidden onClick={() => setSidebarOpen(false)} />
      )}
      <Sidebar
        conversations={conversations}
        activeId={activeId}
        email={user.email}
        diaspora={diaspora ?? calendar}
        open={sidebarOpen}
        covered={panelCovers}
        onClose={closeSidebar}
        onSelect={(id) => void open(id)}
        onNew={() => void open(null)}
        onMore={nextCursor ? () => void loadMore() : null}
        onRename={rename}
        onDelete={remove}
        onDiaspora={(value) => {
          window.localStorage.setItem(DIASPORA, String(value));
          setDiaspora(value);
        }}
        onSignOut={onSignOut}
      />
      <main
        className="flex min-w-0 flex-1 flex-col"
        aria-label={t.mainLabel}
        inert={panelCovers || sidebarCovers ? true : undefined}
      >
        <header className="flex items-center gap-2 border-b border-border px-3 py-2">
          <Button
            ref={menuButton}
            variant="ghost"
            size="icon"
            className="md:hidden"
            onClick={() => setSidebarOpen(true)}
            aria-label={t.openSidebar}
            aria-expanded={sidebarOpen}
          >
            <Menu />
          </Button>
          <h1 className="min-w-0 flex-1 truncate font-semibold" dir="auto" data-testid="conversation-title">
            {activeId ? active?.title || activeTitle || t.untitled : t.newConversation}
          </h1>
          {activeId && messages.length > 0 && (
            <Button variant="ghost" size="sm" onClick={() => void exportMarkdown()} data-testid="export">
              <Download aria-hidden /> <span className="max-sm:sr-only">{t.export}</span>
            </Button>
          )}
        </header>
        <div className="flex-1 overflow-y-auto">
          <div className="mx-auto flex w-full max-w-3xl flex-col gap-4 px-4 py-6">
            {error && (
              <p role="alert" className="rounded-md border border-destructive/40 bg-red-50 p-3 text-sm text-destructive" data-testid="chat-error">
                {error}
              </p>
            )}
            {messages.length === 0 && !error && (
              <div className="flex flex-col items-center gap-6 py-6 text-center" data-testid="empty-state">
                <div>
                  <h2 className="text-2xl font-semibold">{t.emptyTitle}</h2>
                  <p className="mt-2 text-muted-foreground">{t.emptyBody}</p>
                </div>
                <ParashahCard
                  diaspora={diaspora}
                  day={urlParam("date")}
                  onAsk={(q) => void ask(q)}
                  onCalendar={setCalendar}
                />
              </div>
            )}
            <ol className="flex flex-col gap-5" data-testid="messages">
              {messages.map((message, index) => (
                <MessageView
                  key={message.id}
                  message={message}
                  live={message.id === liveId}
                  canRetry={!liveId && message === lastAssistant && index > 0}
                  onCite={(rank) => showSources(message.id, rank)}
                  onShowSources={() => showSources(message.id, null)}
                  onRetry={() => void ask(messages[index - 1]?.content ?? "")}
                  onRate={(rating) => void rate(message, rating)}
                />
              ))}
            </ol>
            <div ref={bottom} />
          </div>
        </div>
        <p className="sr-only" role="status" aria-live="polite">
          {status}
        </p>
        <form onSubmit={submit} className="border-t border-border p-3">
          <div className="mx-auto flex w-full max-w-3xl items-end gap-2">
            <label htmlFor="question" className="sr-only">
              {t.askLabel}
            </label>
            <Textarea
              id="question"
              ref={composer}
              rows={2}
              dir="auto"
              maxLength={QUESTION_LIMIT}
              value={draft}
              placeholder={t.askPlaceholder}
              onChange={(event) => setDraft(event.target.value)}
              onKeyDown={onComposerKey}
              data-testid="question"
            />
            {draft.length > QUESTION_LIMIT - 200 && (
              <span className="self-center text-xs text-muted-foreground" aria-live="polite" data-testid="length">
                {t.tooLong(draft.length, QUESTION_LIMIT)}
              </span>
            )}
            {liveId ? (
              <Button type="button" variant="destructive" onClick={stop} data-testid="stop">
                <Square aria-hidden /> {t.stop}
              </Button>
            ) : (
              <Button type="submit" disabled={!draft.trim()} data-testid="send">
                <Send aria-hidden className="rtl:-scale-x-100" /> {t.send}
              </Button>
            )}
          </div>
        </form>
      </main>
      {panel && panelMessage && (
        <div
          className="fixed inset-0 z-50 bg-background lg:static lg:z-auto lg:w-[30rem] lg:shrink-0"
          role={panelCovers ? "dialog" : undefined}
          aria-modal={panelCovers ? true : undefined}
          aria-label={panelCovers ? t.sources : undefined}
        >
          <SourcePanel
            sources={panelMessage.sources}
            selected={panel.rank}
            verification={panelMessage.verification}
            quotedOnly={panelMessage.provider === "sources-only"}
            onClose={closePanel}
          />
        </div>
      )}
    </div>
  );
}

/** Replace streamed messages with their saved form, keeping texts already loaded. */
function mergeSaved(current: Message[], saved: Message[]): Message[] {
  const live = new Map(current.map((m) => [m.id, m]));
  return saved.map((message) => {
    const shown = live.get(message.id);
    if (!shown) return message;
    const texts = new Map(shown.sources.map((s) => [s.ref, s]));
    return {
      ...message,
      sources: message.sources.map((s) => ({ ...s, he: texts.get(s.ref)?.he, en: texts.get(s.ref)?.en })),
    };
  });
}
