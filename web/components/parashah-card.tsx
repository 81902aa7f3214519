"use client";

// This week's Torah portion, for the empty conversation: its name, ref range
// and three questions about it that the library can answer.

import { CalendarDays } from "lucide-react";
import { useEffect, useState } from "react";

import { Button } from "@/components/ui/button";
import { api } from "@/lib/api";
import { useI18n } from "@/lib/i18n";
import type { Parashah } from "@/lib/types";

type Props = {
  diaspora: boolean | null; // null: the service's setting
  day: string | null;
  onAsk: (question: string) => void;
  onCalendar: (diaspora: boolean) => void;
};

export function ParashahCard({ diaspora, day, onAsk, onCalendar }: Props) {
  const { t, lang } = useI18n();
  const [week, setWeek] = useState<Parashah | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    let live = true;
    const query = new URLSearchParams();
    if (diaspora !== null) query.set("diaspora", String(diaspora));
    if (day) query.set("date", day);
    api<Parashah>(`/calendar/parashah?${query}`).then(
      (value) => {
        if (!live) return;
        setWeek(value);
        onCalendar(value.diaspora);
      },
      () => live && setFailed(true),
    );
    return () => {
      live = false;
    };
    // onCalendar only reports back; a new function must not refetch.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [diaspora, day]);

  if (failed || !week) return null;
  const name = lang === "he" ? week.he_name : week.name;
  return (
    <section
      aria-labelledby="parashah-title"
      className="w-full max-w-2xl rounded-xl border border-border bg-background p-5 shadow-sm"
      data-testid="parashah-card"
      data-name={week.name}
    >
      <p className="flex items-center gap-2 text-sm text-muted-foreground">
        <CalendarDays className="size-4" aria-hidden />
        {t.parashahTitle} · {t.shabbat} {lang === "he" ? week.hebrew_date_he : week.hebrew_date} ·{" "}
        {week.diaspora ? t.diaspora : t.israel}
      </p>
      <h2 id="parashah-title" className="mt-1 text-2xl font-semibold">
        <bdi data-testid="parashah-name">{name}</bdi>
        {lang !== "he" && (
          <span className="ms-3">
            <span className="hebrew text-xl font-normal" dir="rtl" lang="he">
              {week.he_name}
            </span>
          </span>
        )}
      </h2>
      {week.holiday && <p className="mt-1 text-sm text-muted-foreground">{week.holiday}</p>}
      <ul className="mt-2 space-y-0.5 text-sm" data-testid="parashah-refs">
        {week.parashot.map((portion) => (
          <li key={portion.ref}>
            <bdi>{lang === "he" ? portion.he_ref || portion.ref : portion.ref}</bdi>
          </li>
        ))}
      </ul>
      {week.questions.length > 0 && (
        <>
          <h3 className="mt-4 text-sm font-semibold">{t.tryAsking}</h3>
          <div className="mt-2 flex flex-col gap-2">
            {week.questions.map((question) => {
              const text = lang === "he" ? question.he : question.en;
              return (
                <Button
                  key={question.en}
                  variant="outline"
                  className="h-auto justify-start whitespace-normal py-2 text-start"
                  onClick={() => onAsk(text)}
                  data-testid="suggested-question"
                >
                  <span dir="auto">{text}</span>
                </Button>
              );
            })}
          </div>
        </>
      )}
    </section>
  );
}
