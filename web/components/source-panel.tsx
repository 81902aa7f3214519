"use client";

// The sources of one answer: ref, category, the Hebrew (right to left) and
// English side by side, whether the answer's citation of it was checked, a
// link to sefaria.org, and the surrounding chapter or daf from the library.

import { BookOpen, CheckCircle2, CircleDashed, ExternalLink, X } from "lucide-react";
import { useEffect, useRef, useState } from "react";

import { Button } from "@/components/ui/button";
import { api } from "@/lib/api";
import { useI18n } from "@/lib/i18n";
import type { RelatedRef, Segment, Source, TextResponse, Verification } from "@/lib/types";
import { cn, sefariaUrl } from "@/lib/utils";

const texts = new Map<string, Promise<TextResponse>>();

function loadText(ref: string, section: boolean): Promise<TextResponse> {
  const key = `${section ? "section" : "segment"}:${ref}`;
  let found = texts.get(key);
  if (!found) {
    const query = section ? "section=true" : "context=0";
    found = api<TextResponse>(`/texts/${encodeURIComponent(ref)}?${query}`);
    found.catch(() => texts.delete(key));
    texts.set(key, found);
  }
  return found;
}

type PanelProps = {
  sources: Source[];
  selected: number | null;
  verification: Verification | null;
  quotedOnly: boolean; // the answer lists the sources' own words instead of a model's text
  onClose: () => void;
};

export function SourcePanel({ sources, selected, verification, quotedOnly, onClose }: PanelProps) {
  const { t } = useI18n();
  const quotes = verification?.quotes_checked ?? 0;
  const refs = verification?.refs_checked?.length ?? 0;
  const removed = verification?.removed?.length ?? 0;
  const heading = useRef<HTMLHeadingElement>(null);

  // Opened without a chosen source, the panel takes the focus itself.
  useEffect(() => {
    if (selected === null) heading.current?.focus();
  }, [selected]);

  return (
    <aside
      aria-label={t.sources}
      className="flex h-full flex-col border-border bg-muted/40 lg:border-s"
      data-testid="source-panel"
    >
      <div className="flex items-center justify-between gap-2 border-b border-border px-4 py-3">
        <h2 ref={heading} tabIndex={-1} className="text-base font-semibold outline-none">
          {t.sources}
        </h2>
        <Button variant="ghost" size="icon" onClick={onClose} aria-label={t.closePanel}>
          <X />
        </Button>
      </div>
      {verification && (verification.fallback || quotes > 0 || refs > 0 || removed > 0) && (
        <p className="border-b border-border px-4 py-2 text-xs text-muted-foreground" data-testid="verification-summary">
          {verification.fallback ? t.fallbackNote : t.quotesChecked(quotes, refs)}
          {removed > 0 && <> · {t.removedSentences(removed)}</>}
        </p>
      )}
      <ol className="flex-1 space-y-3 overflow-y-auto p-3">
        {sources.map((source) => (
          <SourceCard
            key={source.rank}
            source={source}
            active={source.rank === selected}
            quotes={verification?.quotes_found?.[String(source.rank)] ?? 0}
            quotedOnly={quotedOnly}
          />
        ))}
      </ol>
    </aside>
  );
}

type CardProps = { source: Source; active: boolean; quotes: number; quotedOnly: boolean };

function SourceCard({ source, active, quotes, quotedOnly }: CardProps) {
  const { t, lang } = useI18n();
  const card = useRef<HTMLLIElement>(null);
  const [text, setText] = useState<{ he: string; en: string } | null>(
    source.he !== undefined || source.en !== undefined ? { he: source.he ?? "", en: source.en ?? "" } : null,
  );
  const [error, setError] = useState<string | null>(null);
  const [context, setContext] = useState(false);

  useEffect(() => {
    if (active) {
      card.current?.scrollIntoView({ block: "nearest", behavior: "smooth" });
      card.current?.focus({ preventScroll: true });
    }
  }, [active]);

  useEffect(() => {
    if (text) return;
    let live = true;
    loadText(source.ref, false).then(
      (reply) => {
        if (!live) return;
        setText({
          he: reply.segments.map((s) => s.he).filter(Boolean).join(" "),
          en: reply.segments.map((s) => s.en).filter(Boolean).join(" "),
        });
      },
      (problem: Error) => live && setError(problem.message),
    );
    return () => {
      live = false;
    };
  }, [source.ref, text]);

  const heRef = source.he_ref || source.ref;
  const status =
    source.verified === null ? (
      <span className="inline-flex items-center gap-1 text-muted-foreground">
        <CircleDashed className="size-3.5" aria-hidden /> {t.checking}
      </span>
    ) : source.verified ? (
      <span className="inline-flex items-center gap-1 text-green-800" data-testid="source-verified">
        <CheckCircle2 className="size-3.5" aria-hidden /> {quotedOnly ? t.quotedFromLibrary : t.verified}
        {quotes > 0 && <> · {t.quotesFound(quotes)}</>}
      </span>
    ) : (
      <span className="inline-flex items-center gap-1 text-muted-foreground">{t.notCited}</span>
    );

  return (
    <li
      ref={card}
      tabIndex={-1}
      data-testid="source-card"
      data-ref={source.ref}
      data-active={active || undefined}
      className={cn(
        "scroll-m-3 rounded-lg border border-border bg-background p-3 shadow-sm outline-none",
        active && "ring-2 ring-ring",
      )}
    >
      <div className="flex flex-wrap items-baseline justify-between gap-x-3 gap-y-1">
        <h3 className="font-semibold">
          <span className="me-1 text-muted-foreground">[{source.rank}]</span>
          <bdi>{lang === "he" ? heRef : source.ref}</bdi>
          {lang !== "he" && source.he_ref && (
            <span className="ms-2">
              <span className="hebrew text-sm font-normal text-muted-foreground" dir="rtl" lang="he">
                {source.he_ref}
              </span>
            </span>
          )}
        </h3>
        {(source.category || source.book) && (
          <span className="text-xs text-muted-foreground">
            {[source.category?.replaceAll("/", " › "), source.book].filter(Boolean).join(" · ")}
          </span>
        )}
      </div>
      <div className="mt-1 text-xs">{status}</div>
      {error && <p className="mt-2 text-sm text-destructive">{error}</p>}
      {!text && !error && <p className="mt-2 text-sm text-muted-foreground">{t.loading}</p>}
      {text && !context && <Bilingual he={text.he} en={text.en} />}
      {context && <ContextView sourceRef={source.ref} />}
      <RelatedList sourceRef={source.ref} />
      <div className="mt-3 flex flex-wrap gap-2">
        <Button variant="outline" size="sm" onClick={() => setContext(!context)} aria-pressed={context}>
          <BookOpen aria-hidden /> {context ? t.showSource : t.openInContext}
        </Button>
        <Button variant="outline" size="sm" asChild>
          <a href={source.url} target="_blank" rel="noopener noreferrer">
            <ExternalLink aria-hidden /> {t.openOnSefaria}
          </a>
        </Button>
      </div>
    </li>
  );
}

function RelatedList({ sourceRef }: { sourceRef: string }) {
  const { t, lang } = useI18n();
  const [related, setRelated] = useState<RelatedRef[]>([]);

  useEffect(() => {
    let live = true;
    // Shares the cached request of the card's own text; a failure shows nothing.
    loadText(sourceRef, false).then(
      (reply) => live && setRelated(reply.related ?? []),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, [sourceRef]);

  if (related.length === 0) return null;
  return (
    <div className="mt-3" data-testid="source-related">
      <h4 className="text-xs font-semibold text-muted-foreground">{t.related}</h4>
      <ul className="mt-1 flex flex-wrap gap-x-4 gap-y-1 text-sm">
        {related.map((link) => (
          <li key={link.ref}>
            <a
              className="underline underline-offset-2 hover:text-primary"
              href={sefariaUrl(link.ref)}
              target="_blank"
              rel="noopener noreferrer"
            >
              <bdi>{lang === "he" && link.he_ref ? link.he_ref : link.ref}</bdi>
            </a>{" "}
            <span className="text-xs text-muted-foreground">({t.relatedKind(link.kind)})</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

function Bilingual({ he, en, compact = false }: { he: string; en: string; compact?: boolean }) {
  const { t } = useI18n();
  return (
    <div className={cn("mt-2 grid gap-3", he && en && "sm:grid-cols-2", compact && "mt-0")}>
      {he && (
        <p dir="rtl" lang="he" className="hebrew text-start" data-testid="source-he" aria-label={t.hebrew}>
          {he}
        </p>
      )}
      {en && (
        <p dir="ltr" lang="en" className="text-start text-sm leading-relaxed" data-testid="source-en" aria-label={t.english}>
          {en}
        </p>
      )}
      {!he && !en && <p className="text-sm text-muted-foreground">{t.noText}</p>}
    </div>
  );
}

function ContextView({ sourceRef }: { sourceRef: string }) {
  const { t } = useI18n();
  const [reply, setReply] = useState<TextResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  const marked = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let live = true;
    loadText(sourceRef, true).then(
      (value) => live && setReply(value),
      (problem: Error) => live && setError(problem.message),
    );
    return () => {
      live = false;
    };
  }, [sourceRef]);

  useEffect(() => {
    marked.current?.scrollIntoView({ block: "center", behavior: "smooth" });
  }, [reply]);

  if (error) return <p className="mt-2 text-sm text-destructive">{error}</p>;
  if (!reply) return <p className="mt-2 text-sm text-muted-foreground">{t.loading}</p>;
  const highlight = new Set(reply.highlight ?? []);
  const segments: Segment[] = [...reply.before, ...reply.segments, ...reply.after];
  let first = true;
  return (
    <div className="mt-2 max-h-96 space-y-2 overflow-y-auto rounded border border-border p-2" data-testid="context-view">
      <p className="text-xs font-semibold text-muted-foreground">
        <bdi>{reply.section_ref ?? reply.ref}</bdi>
      </p>
      {segments.map((segment) => {
        const hit = highlight.has(segment.ref);
        const ref = hit && first ? marked : undefined;
        if (hit) first = false;
        return (
          <div
            key={segment.ref}
            ref={ref}
            data-highlight={hit || undefined}
            className={cn("rounded p-1", hit && "bg-highlight/60")}
          >
            <p className="text-xs text-muted-foreground">
              <bdi>{segment.ref}</bdi>
            </p>
            <Bilingual he={segment.he} en={segment.en} compact />
          </div>
        );
      })}
      {reply.truncated && <p className="text-xs text-muted-foreground">{t.truncated}</p>}
    </div>
  );
}
