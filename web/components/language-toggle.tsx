"use client";

import { Languages } from "lucide-react";

import { Button } from "@/components/ui/button";
import { useI18n } from "@/lib/i18n";

export function LanguageToggle() {
  const { t, lang, setLang } = useI18n();
  return (
    <Button
      variant="outline"
      size="sm"
      onClick={() => setLang(lang === "he" ? "en" : "he")}
      aria-label={t.languageLabel}
      data-testid="language-toggle"
    >
      <Languages aria-hidden />
      <span lang={lang === "he" ? "en" : "he"}>{t.language}</span>
    </Button>
  );
}
