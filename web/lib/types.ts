// Shapes of the service's JSON, as the web app reads them.

export type User = { id: string; email: string; verified: boolean; created_at: string };

export type TokenResponse = {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
  user: User;
};

export type ChallengeResponse = {
  status: "code_sent";
  challenge_id: string;
  expires_in: number;
  detail: string;
};

export type Conversation = {
  id: string;
  title: string | null;
  created_at: string;
  updated_at: string;
};

export type ConversationPage = { items: Conversation[]; next_cursor: string | null };

export type MessageStatus = "complete" | "streaming" | "interrupted" | "failed";

export type Source = {
  rank: number;
  ref: string;
  he_ref: string | null;
  book: string | null;
  category: string | null;
  verified: boolean | null; // null while the answer is still being checked
  url: string;
  he?: string;
  en?: string;
};

export type Verification = {
  passed?: boolean;
  sentences?: number;
  citations?: number[];
  refs_checked?: string[];
  quotes_checked?: number;
  quotes_found?: Record<string, number>; // source number -> quotations found in it
  removed?: { text: string; reason: string }[];
  fallback?: boolean;
};

export type Message = {
  id: string;
  role: "user" | "assistant";
  content: string;
  status: MessageStatus;
  mode: string | null;
  provider: string | null; // "sources-only" when the answer lists the sources themselves
  error: string | null;
  verification: Verification | null;
  feedback: "up" | "down" | null;
  sources: Source[];
};

export type ConversationDetail = Conversation & { messages: Message[] };

export type Segment = {
  ref: string;
  he_ref: string;
  he: string;
  en: string;
  versions: { he: string; en: string };
  licenses: { he: string; en: string };
};

export type RelatedRef = { ref: string; he_ref: string; kind: string };

export type TextResponse = {
  ref: string;
  he_ref: string;
  book: string;
  categories: string[];
  segments: Segment[];
  before: Segment[];
  after: Segment[];
  section_ref?: string | null;
  highlight?: string[];
  truncated?: boolean;
  related?: RelatedRef[];
};

export type Parashah = {
  date: string;
  diaspora: boolean;
  holiday: string | null;
  shabbat: string;
  hebrew_date: string;
  hebrew_date_he: string;
  name: string;
  he_name: string;
  parashot: {
    name: string;
    he_name: string;
    book: string;
    ref: string;
    he_ref: string;
    aliyot: string[];
  }[];
  questions: { en: string; he: string }[];
};

/** Modes in which the library had no passage that answers the question. */
export const ABSTAINED = new Set(["abstain", "invalid_ref"]);
