"use client";

// One message of a conversation. Learner questions are shown as plain text.
// Answers are shown as sanitised Markdown with clickable citations, with a
// status when they did not end normally, and with actions (copy, rate,
// retry, show sources).

import { AlertTriangle, BookMarked, Check, Copy, RotateCcw, SearchX, ThumbsDown, ThumbsUp } from "lucide-react";
import { useState } from "react";

import { Markdown } from "@/components/markdown";
import { Button } from "@/components/ui/button";
import { useI18n, type Strings } from "@/lib/i18n";
import { ABSTAINED, type Message } from "@/lib/types";
import { cn } from "@/lib/utils";

// What the service saves as the error of an answer whose reader left.
const STOPPED = new Set(["The answer was stopped before it ended.", "The answer was stopped before it began."]);

/** Describe why an answer did not end normally. */
function statusText(message: Message, t: Strings): string {
  if (message.status === "failed") return message.error ? `${t.failed}: ${message.error}` : t.failed;
  if (!message.error || STOPPED.has(message.error)) return t.interrupted;
  return `${t.brokenOff}: ${message.error}`;
}

type Props = {
  message: Message;
  live: boolean;
  canRetry: boolean;
  onCite: (rank: number) => void;
  onShowSources: () => void;
  onRetry: () => void;
  onRate: (rating: "up" | "down" | null) => void;
};

async function copyText(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

export function MessageView({ message, live, canRetry, onCite, onShowSources, onRetry, onRate }: Props) {
  const { t } = useI18n();
  const [copied, setCopied] = useState(false);

  if (message.role === "user") {
    return (
      <li className="flex justify-end" data-testid="user-message" data-id={message.id}>
        <div className="max-w-[85%] rounded-2xl bg-primary/10 px-4 py-2">
          <p className="sr-only">{t.you}:</p>
          <p dir="auto" className="whitespace-pre-wrap break-words" data-testid="user-text">
            {message.content}
          </p>
        </div>
      </li>
    );
  }

  const abstained = message.mode !== null && ABSTAINED.has(message.mode);
  const waiting = live && !message.content;
  return (
    <li
      className="flex flex-col gap-2"
      data-testid="assistant-message"
      data-id={message.id}
      data-status={message.status}
      data-mode={message.mode ?? ""}
      aria-busy={live || undefined}
    >
      <p className="sr-only">{t.chavruta}:</p>
      <div
        dir="auto"
        className={cn(
          "answer max-w-none break-words rounded-2xl px-4 py-3 leading-relaxed",
          abstained ? "border border-amber-400 bg-accent text-accent-foreground" : "border border-border bg-background",
        )}
        data-testid="answer"
      >
        {abstained && (
          <p className="mb-1 flex items-center gap-2 text-sm font-semibold" data-testid="abstained">
            <SearchX className="size-4" aria-hidden /> {t.noSource}
          </p>
        )}
        {waiting ? (
          <p className="animate-pulse text-muted-foreground">{t.thinking}</p>
        ) : (
          <Markdown text={message.content} sourceCount={message.sources.length} onCite={onCite} />
        )}
      </div>
      {!live && message.status === "streaming" && (
        <p className="flex items-center gap-2 text-sm text-muted-foreground" role="status" data-testid="message-status">
          <AlertTriangle className="size-4" aria-hidden />
          {t.unfinished}
        </p>
      )}
      {(message.status === "interrupted" || message.status === "failed") && (
        <p className="flex items-center gap-2 text-sm text-destructive" role="status" data-testid="message-status">
          <AlertTriangle className="size-4" aria-hidden />
          {statusText(message, t)}
        </p>
      )}
      {!live && (
        <div className="flex flex-wrap items-center gap-1 text-muted-foreground">
          {message.sources.length > 0 && (
            <Button variant="ghost" size="sm" onClick={onShowSources} data-testid="show-sources">
              <BookMarked aria-hidden /> {t.sources} ({message.sources.length})
            </Button>
          )}
          <Button
            variant="ghost"
            size="sm"
            onClick={() => {
              void copyText(message.content).then(() => {
                setCopied(true);
                window.setTimeout(() => setCopied(false), 1500);
              });
            }}
            aria-label={copied ? t.copied : t.copy}
            data-testid="copy"
          >
            {copied ? <Check aria-hidden /> : <Copy aria-hidden />}
          </Button>
          <Button
            variant="ghost"
            size="sm"
            aria-label={t.helpful}
            aria-pressed={message.feedback === "up"}
            className={cn(message.feedback === "up" && "bg-muted text-green-800")}
            onClick={() => onRate(message.feedback === "up" ? null : "up")}
            data-testid="thumbs-up"
          >
            <ThumbsUp aria-hidden />
          </Button>
          <Button
            variant="ghost"
            size="sm"
            aria-label={t.notHelpful}
            aria-pressed={message.feedback === "down"}
            className={cn(message.feedback === "down" && "bg-muted text-destructive")}
            onClick={() => onRate(message.feedback === "down" ? null : "down")}
            data-testid="thumbs-down"
          >
            <ThumbsDown aria-hidden />
          </Button>
          {canRetry && (
            <Button variant="ghost" size="sm" onClick={onRetry} data-testid="retry">
              <RotateCcw aria-hidden /> {t.retry}
            </Button>
          )}
        </div>
      )}
    </li>
  );
}
