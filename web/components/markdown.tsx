"use client";

// Renders model output as Markdown. Raw HTML in the text is shown as text,
// the tree is sanitised, and only http(s), mailto and citation links survive,
// so an answer cannot inject a script, an event handler or a javascript: link.
// Citation markers such as [2] become buttons that open source 2.

import { useMemo, useRef } from "react";
import ReactMarkdown, { defaultUrlTransform, type Components } from "react-markdown";
import rehypeSanitize, { defaultSchema } from "rehype-sanitize";
import remarkBreaks from "remark-breaks";
import remarkGfm from "remark-gfm";

import { useI18n } from "@/lib/i18n";

const CITE = "cite:";
const MARKER = /\[(\d{1,3})\]/g;
const HAS_MARKER = /\[\d{1,3}\]/;

type MarkdownNode = {
  type: string;
  value?: string;
  url?: string;
  children?: MarkdownNode[];
};

/** Build a remark plugin that shows raw HTML as plain text. */
function htmlAsText() {
  const walk = (node: MarkdownNode) => {
    if (node.type === "html") node.type = "text";
    node.children?.forEach(walk);
  };
  return (tree: MarkdownNode) => walk(tree);
}

/** Split a text node at its citation markers into text and citation links. */
function splitCitations(value: string): MarkdownNode[] {
  const parts: MarkdownNode[] = [];
  let last = 0;
  for (const match of value.matchAll(MARKER)) {
    const start = match.index ?? 0;
    if (start > last) parts.push({ type: "text", value: value.slice(last, start) });
    parts.push({ type: "link", url: CITE + match[1], children: [{ type: "text", value: match[0] }] });
    last = start + match[0].length;
  }
  if (last < value.length) parts.push({ type: "text", value: value.slice(last) });
  return parts;
}

/**
 * Build a remark plugin that turns `[3]` in text into a link to `cite:3`.
 * Code and existing links are left alone, because only text nodes outside
 * links are rewritten.
 */
export function citations() {
  const walk = (node: MarkdownNode) => {
    if (!node.children || node.type === "link" || node.type === "linkReference") return;
    node.children = node.children.flatMap((child) => {
      if (child.type === "text" && child.value && HAS_MARKER.test(child.value)) {
        return splitCitations(child.value);
      }
      walk(child);
      return [child];
    });
  };
  return (tree: MarkdownNode) => walk(tree);
}

const schema = {
  ...defaultSchema,
  protocols: { ...defaultSchema.protocols, href: ["http", "https", "mailto", "cite"] },
};

function transformUrl(url: string): string {
  if (url.startsWith(CITE)) return /^cite:\d{1,3}$/.test(url) ? url : "";
  return defaultUrlTransform(url);
}

type Props = { text: string; sourceCount: number; onCite: (rank: number) => void };

export function Markdown({ text, sourceCount, onCite }: Props) {
  const { t } = useI18n();
  // The renderers keep their identity across renders (a new function would
  // remount every citation button on each streamed token and lose focus).
  const cite = useRef(onCite);
  cite.current = onCite;
  const components = useMemo<Components>(() => ({
    a({ href, children }) {
      if (href?.startsWith(CITE)) {
        const rank = Number(href.slice(CITE.length));
        if (rank < 1 || rank > sourceCount) return <span>[{rank}]</span>;
        return (
          <button
            type="button"
            className="citation ms-0.5 inline-flex items-center rounded bg-accent px-1 align-baseline text-xs font-semibold text-accent-foreground underline-offset-2 hover:underline focus-visible:ring-2 focus-visible:ring-ring"
            aria-label={t.citation(rank)}
            data-rank={rank}
            onClick={() => cite.current(rank)}
          >
            [{rank}]
          </button>
        );
      }
      // A link whose address was removed as unsafe is shown as its text.
      if (!href) return <span>{children}</span>;
      return (
        <a href={href} target="_blank" rel="noopener noreferrer nofollow">
          {children}
        </a>
      );
    },
    p: ({ children }) => <p dir="auto">{children}</p>,
    li: ({ children }) => <li dir="auto">{children}</li>,
    blockquote: ({ children }) => <blockquote dir="auto">{children}</blockquote>,
    img: ({ alt }) => <span>{alt}</span>,
  }), [sourceCount, t]);
  return (
    <ReactMarkdown
      remarkPlugins={[remarkGfm, remarkBreaks, htmlAsText, citations]}
      rehypePlugins={[[rehypeSanitize, schema]]}
      urlTransform={transformUrl}
      components={components}
    >
      {text}
    </ReactMarkdown>
  );
}
