"use client";

// Sign in, create an account, and the emailed-code step when the service
// requires one.

import { useState, type FormEvent } from "react";

import { LanguageToggle } from "@/components/language-toggle";
import { Button } from "@/components/ui/button";
import { Input, Label } from "@/components/ui/input";
import { ApiError, auth, type SignInResult } from "@/lib/api";
import { useI18n } from "@/lib/i18n";
import type { ChallengeResponse, User } from "@/lib/types";

type Props = { notice: string | null; onSignedIn: (user: User) => void };

export function AuthScreen({ notice, onSignedIn }: Props) {
  const { t } = useI18n();
  const [mode, setMode] = useState<"login" | "register">("login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const [challenge, setChallenge] = useState<ChallengeResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(step: () => Promise<SignInResult>) {
    setBusy(true);
    setError(null);
    try {
      const result = await step();
      if (result.kind === "code") {
        setChallenge(result.challenge);
        setCode("");
      } else {
        onSignedIn(result.user);
      }
    } catch (problem) {
      setError(describe(problem));
    } finally {
      setBusy(false);
    }
  }

  /** Describe the failure in the interface's language when its HTTP status identifies it. */
  function describe(problem: unknown): string {
    if (!(problem instanceof ApiError)) return String(problem);
    if (problem.status === 401) return challenge ? t.wrongCode : t.wrongPassword;
    if (problem.status === 409) return t.emailTaken;
    if (problem.status === 429) return t.tooManyTries;
    if (problem.status === 503) return t.mailDown;
    // TODO: other messages (a password too weak, say) come from the service
    // in English whatever the interface language.
    return problem.message;
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    if (challenge && !code.trim()) {
      setError(t.missingCode);
      return;
    }
    if (!challenge && (!email.trim() || !password)) {
      setError(t.missingCredentials);
      return;
    }
    if (challenge) {
      void run(() => auth.verify(challenge.challenge_id, code.trim()));
    } else if (mode === "login") {
      void run(() => auth.login(email, password));
    } else {
      void run(() => auth.register(email, password));
    }
  }

  let title = mode === "login" ? t.signIn : t.register;
  if (challenge) title = t.codeTitle;
  const action = challenge ? t.verify : title;
  return (
    <main className="flex min-h-full flex-col items-center justify-center bg-muted/60 p-4">
      <div className="absolute end-4 top-4">
        <LanguageToggle />
      </div>
      <div className="w-full max-w-sm rounded-xl border border-border bg-background p-6 shadow-sm">
        <p className="text-sm font-semibold text-primary">{t.appName}</p>
        <h1 className="mt-1 text-2xl font-semibold">{title}</h1>
        <p className="mt-1 text-sm text-muted-foreground">{challenge ? t.codeSent : t.tagline}</p>
        {notice && !error && (
          <p role="status" className="mt-3 rounded-md bg-accent p-2 text-sm text-accent-foreground">
            {notice}
          </p>
        )}
        <form className="mt-5 space-y-4" onSubmit={submit} noValidate>
          {challenge ? (
            <div className="space-y-1.5">
              <Label htmlFor="code">{t.codeLabel}</Label>
              <Input
                id="code"
                name="code"
                inputMode="numeric"
                autoComplete="one-time-code"
                pattern="[0-9]*"
                maxLength={6}
                required
                autoFocus
                value={code}
                onChange={(event) => setCode(event.target.value)}
                dir="ltr"
              />
            </div>
          ) : (
            <>
              <div className="space-y-1.5">
                <Label htmlFor="email">{t.email}</Label>
                <Input
                  id="email"
                  name="email"
                  type="email"
                  autoComplete="email"
                  maxLength={320}
                  required
                  autoFocus
                  value={email}
                  onChange={(event) => setEmail(event.target.value)}
                  dir="ltr"
                />
              </div>
              <div className="space-y-1.5">
                <Label htmlFor="password">{t.password}</Label>
                <Input
                  id="password"
                  name="password"
                  type="password"
                  autoComplete={mode === "login" ? "current-password" : "new-password"}
                  required
                  value={password}
                  onChange={(event) => setPassword(event.target.value)}
                  aria-describedby={mode === "register" ? "password-hint" : undefined}
                  dir="ltr"
                />
                {mode === "register" && (
                  <p id="password-hint" className="text-xs text-muted-foreground">
                    {t.passwordHint}
                  </p>
                )}
              </div>
            </>
          )}
          {error && (
            <p role="alert" className="rounded-md border border-destructive/40 bg-red-50 p-2 text-sm text-destructive" data-testid="auth-error">
              {error}
            </p>
          )}
          <Button type="submit" className="w-full" disabled={busy}>
            {busy ? t.working : action}
          </Button>
        </form>
        <div className="mt-4 text-center">
          {challenge ? (
            <Button variant="link" onClick={() => setChallenge(null)}>
              {t.back}
            </Button>
          ) : (
            <Button
              variant="link"
              onClick={() => {
                setMode(mode === "login" ? "register" : "login");
                setError(null);
              }}
            >
              {mode === "login" ? t.needAccount : t.haveAccount}
            </Button>
          )}
        </div>
      </div>
    </main>
  );
}
