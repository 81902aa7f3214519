"use client";

// Shows a way back instead of a blank page when rendering fails.

import { Component, type ErrorInfo, type ReactNode } from "react";

type Props = { children: ReactNode };
type State = { error: Error | null };

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null };

  static getDerivedStateFromError(error: Error): State {
    return { error };
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error("The page failed to render", error, info.componentStack);
  }

  render(): ReactNode {
    if (!this.state.error) return this.props.children;
    return (
      <main className="mx-auto max-w-lg p-8" role="alert">
        <h1 className="text-xl font-semibold">Something went wrong · משהו השתבש</h1>
        <p className="mt-2 text-sm text-muted-foreground">{this.state.error.message}</p>
        <a className="mt-4 inline-block text-primary underline" href="/">
          Start again · להתחיל מחדש
        </a>
      </main>
    );
  }
}
