"use client";

// Renders model output as Markdown. Raw HTML in the text is shown as text,
// the tree is sanitised, and only http(s), mailto and citation links survive,
// so an answer cannot inject a script, an event handler or a javascript: link.
// Citation markers such as [2] become buttons that open source 2.

import ReactMarkdown, { defaultUrlTransform, type Components } from "react-markdown";
import rehypeSanitize, { defaultSchema } from "rehype-sanitize";
import remarkBreaks from "remark-breaks";
import remarkGfm from "remark-gfm";

import { useI18n } from "@/lib/i18n";

const CITE = "cite:";

type MarkdownNode = { type: string; value?: string; children?: MarkdownNode[] };

/** A remark plugin that turns raw HTML into plain text. */
function htmlAsText() {
  const walk = (node: MarkdownNode) => {
    if (node.type === "html") node.type = "text";
    node.children?.forEach(walk);
  };
  return (tree: MarkdownNode) => walk(tree);
}

const schema = {
  ...defaultSchema,
  protocols: { ...defaultSchema.protocols, href: ["http", "https", "mailto", "cite"] },
};

/** Turn `[3]` into a link to `cite:3`; leaves existing links such as `[3](…)` alone. */
export function linkCitations(text: string): string {
  return text
    .replace(/^ {4,}(?=\S)/gm, "> ")
    .replace(/\[(\d{1,3})\](?!\()/g, (_, n: string) => `[\\[${n}\\]](${CITE}${n})`);
}

function transformUrl(url: string): string {
  if (url.startsWith(CITE)) return /^cite:\d{1,3}$/.test(url) ? url : "";
  return defaultUrlTransform(url);
}

type Props = { text: string; sourceCount: number; onCite: (rank: number) => void };

export function Markdown({ text, sourceCount, onCite }: Props) {
  const { t } = useI18n();
  const components: Components = {
    a({ href, children }) {
      if (href?.startsWith(CITE)) {
        const rank = Number(href.slice(CITE.length));
        if (rank < 1 || rank > sourceCount) return <span>[{rank}]</span>;
        return (
          <button
            type="button"
            className="citation mx-0.5 inline-flex items-center rounded bg-accent px-1 align-baseline text-xs font-semibold text-accent-foreground underline-offset-2 hover:underline focus-visible:ring-2 focus-visible:ring-ring"
            aria-label={t.citation(rank)}
            data-rank={rank}
            onClick={() => onCite(rank)}
          >
            [{rank}]
          </button>
        );
      }
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
  };
  return (
    <ReactMarkdown
      remarkPlugins={[remarkGfm, remarkBreaks, htmlAsText]}
      rehypePlugins={[[rehypeSanitize, schema]]}
      urlTransform={transformUrl}
      components={components}
    >
      {linkCitations(text)}
    </ReactMarkdown>
  );
}
