"use client";

import { useEffect, useState } from "react";

import { AuthScreen } from "@/components/auth-screen";
import { ChatApp } from "@/components/chat-app";
import { ErrorBoundary } from "@/components/error-boundary";
import { USER_KEY, auth, onSignedOut, storedUser } from "@/lib/api";
import { I18nProvider, useI18n } from "@/lib/i18n";
import type { User } from "@/lib/types";

function Root() {
  const { t } = useI18n();
  const [ready, setReady] = useState(false);
  const [user, setUser] = useState<User | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  useEffect(() => {
    setUser(storedUser());
    setReady(true);
    // Another tab signed in, out, or as someone else: follow it.
    const onStorage = (event: StorageEvent) => {
      if (event.key !== USER_KEY && event.key !== null) return;
      setUser((current) => {
        const stored = storedUser();
        if (stored?.id === current?.id) return current;
        // The open conversation belongs to the account that left.
        window.history.replaceState(null, "", window.location.pathname);
        return stored;
      });
    };
    window.addEventListener("storage", onStorage);
    const stop = onSignedOut(() => {
      setUser((current) => {
        if (current) setNotice(t.sessionExpired);
        return null;
      });
    });
    return () => {
      stop();
      window.removeEventListener("storage", onStorage);
    };
  }, [t.sessionExpired]);

  if (!ready) return null;
  if (!user) {
    return (
      <AuthScreen
        notice={notice}
        onSignedIn={(signedIn) => {
          setNotice(null);
          setUser(signedIn);
        }}
      />
    );
  }
  return (
    <ChatApp
      key={user.id}
      user={user}
      onSignOut={() => {
        void auth.logout().finally(() => {
          setNotice(null);
          setUser(null);
          window.history.replaceState(null, "", window.location.pathname);
        });
      }}
    />
  );
}

export default function Page() {
  return (
    <I18nProvider>
      <ErrorBoundary>
        <Root />
      </ErrorBoundary>
    </I18nProvider>
  );
}
