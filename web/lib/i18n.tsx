"use client";

// Interface strings in English and Hebrew. Choosing Hebrew turns the whole
// layout right-to-left; the choice is kept in local storage.

import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";

export type Language = "en" | "he";

const relatedKindsEn: Record<string, string> = {
  commentary: "commentary",
  base: "the text it explains",
  link: "linked",
};

const en = {
  appName: "Torah Study",
  tagline: "A study partner for the Sefaria library. Every answer cites its sources.",
  signIn: "Sign in",
  register: "Create account",
  email: "Email",
  password: "Password",
  passwordHint: "At least 10 characters; not your email or a common password.",
  haveAccount: "Already have an account? Sign in",
  needAccount: "New here? Create an account",
  codeTitle: "Check your email",
  codeLabel: "Six-digit code",
  codeSent: "We sent a code to your email. It expires in 10 minutes.",
  verify: "Verify",
  back: "Back",
  working: "Working…",
  signOut: "Sign out",
  sessionExpired: "Your session ended. Please sign in again.",
  newConversation: "New conversation",
  conversations: "Conversations",
  noConversations: "No conversations yet. Ask your first question.",
  untitled: "Untitled conversation",
  moreConversations: "Show older conversations",
  rename: "Rename",
  delete: "Delete",
  save: "Save",
  cancel: "Cancel",
  conversationActions: "Conversation actions",
  renameTitle: "Rename conversation",
  titleLabel: "Title",
  deleteTitle: "Delete this conversation?",
  deleteBody: "Its questions, answers and ratings are deleted for good.",
  openSidebar: "Show conversations",
  closeSidebar: "Hide conversations",
  askPlaceholder: "Ask about Tanakh, Mishnah, Talmud, commentaries or halakhah…",
  askLabel: "Your question",
  send: "Ask",
  stop: "Stop",
  retry: "Retry",
  copy: "Copy",
  copied: "Copied",
  helpful: "Helpful",
  notHelpful: "Not helpful",
  export: "Export as Markdown",
  you: "You",
  chavruta: "Torah Study",
  thinking: "Searching the library…",
  interrupted: "Stopped before the end",
  failed: "The answer failed",
  brokenOff: "The answer broke off",
  missingCredentials: "Enter your email and password.",
  wrongPassword: "Incorrect email or password.",
  wrongCode: "That code is wrong or has expired.",
  emailTaken: "An account with this email already exists. Sign in instead.",
  tooManyTries: "Too many attempts. Wait a few minutes and try again.",
  mailDown: "The email could not be sent. Try again later.",
  missingCode: "Enter the six-digit code from the email.",
  tooLong: (length: number, limit: number) => `${length} of ${limit} characters`,
  noSource: "No source in the library",
  sources: "Sources",
  source: "Source",
  closePanel: "Close sources",
  hebrew: "Hebrew",
  english: "English",
  verified: "Cited and checked against the text",
  notCited: "Retrieved, not cited",
  quotedFromLibrary: "Quoted from the library's text",
  fallbackNote: "The model's text could not be used, so the sources themselves are shown",
  noReply: "The service sent no answer. Try again.",
  unfinished: "This answer has not finished: it is still being written, or the service stopped while writing it.",
  quotesFound: (count: number) =>
    `${count} quotation${count === 1 ? "" : "s"} found word for word in this text`,
  checking: "Being checked…",
  quotesChecked: (quotes: number, refs: number) =>
    `${quotes} quotation${quotes === 1 ? "" : "s"} and ${refs} ref${refs === 1 ? "" : "s"} checked`,
  removedSentences: (count: number) =>
    `${count} sentence${count === 1 ? "" : "s"} removed: not supported by the sources`,
  openOnSefaria: "Open on Sefaria",
  openInContext: "Open in context",
  related: "Commentary and linked passages",
  relatedKind: (kind: string) => relatedKindsEn[kind] ?? kind,
  showSource: "Show only this source",
  loading: "Loading…",
  noText: "No text in this language.",
  truncated: "The section is long; the first part is shown.",
  citation: (n: number) => `Source ${n}`,
  parashahTitle: "This week's Torah portion",
  shabbat: "Shabbat",
  tryAsking: "Try asking",
  israel: "Israel",
  diaspora: "Diaspora",
  calendarFor: "Portion calendar",
  language: "עברית",
  languageLabel: "Switch the interface to Hebrew",
  emptyTitle: "What would you like to learn?",
  emptyBody: "Ask in English or Hebrew. Answers come only from the library, with sources you can open.",
  errorTitle: "Something went wrong",
  notFound: "This conversation does not exist or was deleted.",
  mainLabel: "Conversation",
  skipToQuestion: "Skip to the question box",
};

export type Strings = typeof en;

const he: Strings = {
  appName: "לימוד תורה",
  tagline: "חברותא לספריית ספריא. כל תשובה מציינת את מקורותיה.",
  signIn: "כניסה",
  register: "יצירת חשבון",
  email: "דוא״ל",
  password: "סיסמה",
  passwordHint: "לפחות 10 תווים; לא כתובת הדוא״ל ולא סיסמה נפוצה.",
  haveAccount: "כבר יש לך חשבון? כניסה",
  needAccount: "חדש כאן? יצירת חשבון",
  codeTitle: "בדקו את הדוא״ל",
  codeLabel: "קוד בן שש ספרות",
  codeSent: "שלחנו קוד לדוא״ל שלך. הוא בתוקף 10 דקות.",
  verify: "אימות",
  back: "חזרה",
  working: "רגע…",
  signOut: "יציאה",
  sessionExpired: "החיבור הסתיים. נא להיכנס שוב.",
  newConversation: "שיחה חדשה",
  conversations: "שיחות",
  noConversations: "עדיין אין שיחות. שאלו את השאלה הראשונה.",
  untitled: "שיחה ללא שם",
  moreConversations: "הצגת שיחות ישנות יותר",
  rename: "שינוי שם",
  delete: "מחיקה",
  save: "שמירה",
  cancel: "ביטול",
  conversationActions: "פעולות על השיחה",
  renameTitle: "שינוי שם השיחה",
  titleLabel: "שם",
  deleteTitle: "למחוק את השיחה?",
  deleteBody: "השאלות, התשובות והדירוגים שבה יימחקו לצמיתות.",
  openSidebar: "הצגת השיחות",
  closeSidebar: "הסתרת השיחות",
  askPlaceholder: "שאלו על תנ״ך, משנה, תלמוד, מפרשים או הלכה…",
  askLabel: "השאלה שלך",
  send: "שאלה",
  stop: "עצירה",
  retry: "שוב",
  copy: "העתקה",
  copied: "הועתק",
  helpful: "מועיל",
  notHelpful: "לא מועיל",
  export: "ייצוא כ־Markdown",
  you: "את/ה",
  chavruta: "לימוד תורה",
  thinking: "מחפש בספרייה…",
  interrupted: "נעצר לפני הסוף",
  failed: "התשובה נכשלה",
  brokenOff: "התשובה נקטעה",
  missingCredentials: "נא להזין דוא״ל וסיסמה.",
  wrongPassword: "הדוא״ל או הסיסמה שגויים.",
  wrongCode: "הקוד שגוי או שפג תוקפו.",
  emailTaken: "כבר קיים חשבון עם הדוא״ל הזה. אפשר להיכנס.",
  tooManyTries: "יותר מדי ניסיונות. נא לחכות כמה דקות ולנסות שוב.",
  mailDown: "לא ניתן היה לשלוח את הדוא״ל. נא לנסות שוב מאוחר יותר.",
  missingCode: "נא להזין את הקוד בן שש הספרות מהדוא״ל.",
  tooLong: (length: number, limit: number) => `${length} מתוך ${limit} תווים`,
  noSource: "אין מקור בספרייה",
  sources: "מקורות",
  source: "מקור",
  closePanel: "סגירת המקורות",
  hebrew: "עברית",
  english: "אנגלית",
  verified: "צוטט ונבדק מול הטקסט",
  notCited: "נמצא, לא צוטט",
  quotedFromLibrary: "מצוטט מטקסט הספרייה",
  fallbackNote: "לא ניתן היה להשתמש בטקסט של המודל, ולכן מוצגים המקורות עצמם",
  noReply: "השירות לא שלח תשובה. נא לנסות שוב.",
  unfinished: "התשובה לא הסתיימה: היא עדיין נכתבת, או שהשירות נעצר בזמן כתיבתה.",
  quotesFound: (count: number) => (count === 1 ? "ציטוט אחד נמצא מילה במילה בטקסט" : `${count} ציטוטים נמצאו מילה במילה בטקסט`),
  checking: "בבדיקה…",
  quotesChecked: (quotes: number, refs: number) => `נבדקו ${quotes} ציטוטים ו־${refs} מראי מקום`,
  removedSentences: (count: number) =>
    count === 1 ? "הוסר משפט אחד שהמקורות אינם תומכים בו" : `הוסרו ${count} משפטים שהמקורות אינם תומכים בהם`,
  openOnSefaria: "פתיחה בספריא",
  openInContext: "פתיחה בהקשר",
  related: "פרשנות ומקורות מקושרים",
  relatedKind: (kind: string) =>
    kind === "commentary"
      ? "פרשנות"
      : kind === "base"
        ? "הטקסט המפורש"
        : kind === "quotation"
          ? "ציטוט"
          : kind === "reference"
            ? "הפניה"
            : "קישור",
  showSource: "הצגת המקור בלבד",
  loading: "טוען…",
  noText: "אין טקסט בשפה זו.",
  truncated: "הפרק ארוך; מוצג חלקו הראשון.",
  citation: (n: number) => `מקור ${n}`,
  parashahTitle: "פרשת השבוע",
  shabbat: "שבת",
  tryAsking: "אפשר לשאול",
  israel: "ארץ ישראל",
  diaspora: "חוץ לארץ",
  calendarFor: "לוח הפרשות",
  language: "English",
  languageLabel: "Switch the interface to English",
  emptyTitle: "מה תרצו ללמוד?",
  emptyBody: "שאלו בעברית או באנגלית. התשובות באות מהספרייה בלבד, עם מקורות שאפשר לפתוח.",
  errorTitle: "משהו השתבש",
  notFound: "השיחה אינה קיימת או שנמחקה.",
  mainLabel: "שיחה",
  skipToQuestion: "דילוג לתיבת השאלה",
};

const STRINGS: Record<Language, Strings> = { en, he };
const KEY = "torah-study.language";

type I18n = { lang: Language; t: Strings; setLang: (lang: Language) => void };

const I18nContext = createContext<I18n>({ lang: "en", t: en, setLang: () => {} });

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Language>("en");

  useEffect(() => {
    const saved = window.localStorage.getItem(KEY);
    if (saved === "en" || saved === "he") setLangState(saved);
    else if (navigator.language.toLowerCase().startsWith("he")) setLangState("he");
  }, []);

  useEffect(() => {
    document.documentElement.lang = lang;
    document.documentElement.dir = lang === "he" ? "rtl" : "ltr";
    document.title = STRINGS[lang].appName;
  }, [lang]);

  const setLang = useCallback((next: Language) => {
    window.localStorage.setItem(KEY, next);
    setLangState(next);
  }, []);

  return <I18nContext.Provider value={{ lang, t: STRINGS[lang], setLang }}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  return useContext(I18nContext);
}
