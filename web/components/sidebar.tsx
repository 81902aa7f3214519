"use client";

// Saved conversations, newest activity first, with rename and delete.

import { LogOut, MoreHorizontal, Pencil, Plus, Trash2, X } from "lucide-react";
import { useEffect, useRef, useState, type FormEvent } from "react";


import { LanguageToggle } from "@/components/language-toggle";
import { Button } from "@/components/ui/button";
import {
  AlertDialog,
  AlertDialogAction,
  AlertDialogCancel,
  AlertDialogContent,
  AlertDialogDescription,
  AlertDialogTitle,
  Dialog,
  DialogClose,
  DialogContent,
  DialogFooter,
  DialogTitle,
} from "@/components/ui/dialog";
import { DropdownMenu, DropdownMenuContent, DropdownMenuItem, DropdownMenuTrigger } from "@/components/ui/dropdown-menu";
import { Input, Label } from "@/components/ui/input";
import { useI18n } from "@/lib/i18n";
import type { Conversation } from "@/lib/types";
import { cn, useMediaQuery } from "@/lib/utils";

type Props = {
  conversations: Conversation[];
  activeId: string | null;
  email: string;
  diaspora: boolean | null; // null until the service's setting is known
  open: boolean;
  covered: boolean; // the source panel covers the screen
  onClose: () => void;
  onSelect: (id: string) => void;
  onNew: () => void;
  onMore: (() => void) | null; // null when every conversation is listed
  onRename: (id: string, title: string) => Promise<void>;
  onDelete: (id: string) => Promise<void>;
  onDiaspora: (value: boolean) => void;
  onSignOut: () => void;
};

export function Sidebar(props: Props) {
  const { t } = useI18n();
  const [renaming, setRenaming] = useState<Conversation | null>(null);
  const [deleting, setDeleting] = useState<Conversation | null>(null);
  const [title, setTitle] = useState("");
  const [error, setError] = useState<string | null>(null);
  const wide = useMediaQuery("(min-width: 768px)");
  const newButton = useRef<HTMLButtonElement>(null);
  const renamedId = useRef<string | undefined>(undefined);
  const deletedId = useRef<string | undefined>(undefined);

  // On a narrow screen the open sidebar takes the focus and Escape closes it.
  const { open, onClose } = props;
  useEffect(() => {
    if (wide || !open) return;
    newButton.current?.focus();
    const onKey = (event: KeyboardEvent) => {
      // Escape in a menu or dialog closes only that: the dialog library marks
      // the key event as handled.
      if (event.key === "Escape" && !event.defaultPrevented) onClose();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [wide, open, onClose]);

  /** Focus a conversation's button, or New conversation when it is gone. */
  function focusAfterDialog(event: Event, id: string | undefined) {
    event.preventDefault();
    // The conversation's actions button when it is still listed.
    const item = id ? document.querySelector<HTMLElement>(`li[data-id="${id}"] button[aria-haspopup]`) : null;
    (item ?? newButton.current)?.focus();
  }

  async function rename(event: FormEvent) {
    event.preventDefault();
    if (!renaming || !title.trim()) return;
    try {
      await props.onRename(renaming.id, title.trim());
      setRenaming(null);
    } catch (problem) {
      setError(problem instanceof Error ? problem.message : String(problem));
    }
  }

  return (
    <nav
      aria-label={t.conversations}
      className={cn(
        "fixed inset-y-0 start-0 z-40 flex w-72 flex-col border-e border-border bg-muted transition-transform md:static",
        !props.open && "max-md:ltr:-translate-x-full max-md:rtl:translate-x-full",
      )}
      data-testid="sidebar"
      inert={(!wide && !props.open) || props.covered ? true : undefined}
    >
      <div className="flex items-center justify-between gap-2 p-3">
        <span className="font-semibold">{t.appName}</span>
        <Button variant="ghost" size="icon" className="md:hidden" onClick={props.onClose} aria-label={t.closeSidebar}>
          <X />
        </Button>
      </div>
      <div className="px-3">
        <Button ref={newButton} className="w-full justify-start" onClick={props.onNew} data-testid="new-conversation">
          <Plus aria-hidden /> {t.newConversation}
        </Button>
      </div>
      <h2 className="px-4 pb-1 pt-4 text-xs font-semibold uppercase text-muted-foreground">{t.conversations}</h2>
      <ul className="flex-1 space-y-0.5 overflow-y-auto px-2" data-testid="conversation-list">
        {props.conversations.length === 0 && (
          <li className="px-2 py-3 text-sm text-muted-foreground" data-testid="no-conversations">
            {t.noConversations}
          </li>
        )}
        {props.conversations.map((conversation) => {
          const active = conversation.id === props.activeId;
          const label = conversation.title || t.untitled;
          return (
            <li key={conversation.id} className="group flex items-center gap-1" data-testid="conversation-item" data-id={conversation.id}>
              <button
                type="button"
                onClick={() => props.onSelect(conversation.id)}
                aria-current={active ? "page" : undefined}
                className={cn(
                  "min-w-0 flex-1 truncate rounded-md px-2 py-2 text-start text-sm hover:bg-background focus-visible:ring-2 focus-visible:ring-ring",
                  active && "bg-background font-semibold shadow-sm",
                )}
                dir="auto"
                title={label}
              >
                {label}
              </button>
              <DropdownMenu>
                <DropdownMenuTrigger asChild>
                  <Button variant="ghost" size="icon" className="size-8 shrink-0" aria-label={`${t.conversationActions}: ${label}`}>
                    <MoreHorizontal />
                  </Button>
                </DropdownMenuTrigger>
                <DropdownMenuContent align="end">
                  <DropdownMenuItem
                    onSelect={() => {
                      setTitle(conversation.title ?? "");
                      setError(null);
                      setRenaming(conversation);
                      renamedId.current = conversation.id;
                    }}
                  >
                    <Pencil aria-hidden /> {t.rename}
                  </DropdownMenuItem>
                  <DropdownMenuItem
                    className="text-destructive"
                    onSelect={() => {
                      deletedId.current = conversation.id;
                      setDeleting(conversation);
                    }}
                  >
                    <Trash2 aria-hidden /> {t.delete}
                  </DropdownMenuItem>
                </DropdownMenuContent>
              </DropdownMenu>
            </li>
          );
        })}
        {props.onMore && (
          <li>
            <Button variant="ghost" size="sm" className="w-full" onClick={props.onMore} data-testid="more-conversations">
              {t.moreConversations}
            </Button>
          </li>
        )}
      </ul>
      <div className="space-y-2 border-t border-border p-3 text-sm">
        <fieldset className="flex items-center gap-2">
          <legend className="sr-only">{t.calendarFor}</legend>
          <span className="text-xs text-muted-foreground">{t.calendarFor}:</span>
          <label className="flex items-center gap-1">
            <input type="radio" name="calendar" checked={props.diaspora === false} onChange={() => props.onDiaspora(false)} />
            {t.israel}
          </label>
          <label className="flex items-center gap-1">
            <input type="radio" name="calendar" checked={props.diaspora === true} onChange={() => props.onDiaspora(true)} />
            {t.diaspora}
          </label>
        </fieldset>
        <div className="flex items-center justify-between gap-2">
          <LanguageToggle />
          <Button variant="ghost" size="sm" onClick={props.onSignOut} data-testid="sign-out">
            <LogOut aria-hidden /> {t.signOut}
          </Button>
        </div>
        <p className="truncate text-xs text-muted-foreground" dir="ltr" title={props.email}>
          {props.email}
        </p>
      </div>

      <Dialog open={renaming !== null} onOpenChange={(open) => !open && setRenaming(null)}>
        <DialogContent aria-describedby={undefined} onCloseAutoFocus={(event) => focusAfterDialog(event, renamedId.current)}>
          <DialogTitle>{t.renameTitle}</DialogTitle>
          <form onSubmit={rename} className="space-y-4">
            <div className="space-y-1.5">
              <Label htmlFor="rename-title">{t.titleLabel}</Label>
              <Input
                id="rename-title"
                value={title}
                maxLength={200}
                onChange={(event) => setTitle(event.target.value)}
                dir="auto"
                autoFocus
              />
            </div>
            {error && (
              <p role="alert" className="text-sm text-destructive">
                {error}
              </p>
            )}
            <DialogFooter>
              <DialogClose asChild>
                <Button variant="outline">{t.cancel}</Button>
              </DialogClose>
              <Button type="submit" disabled={!title.trim()}>
                {t.save}
              </Button>
            </DialogFooter>
          </form>
        </DialogContent>
      </Dialog>

      <AlertDialog open={deleting !== null} onOpenChange={(open) => !open && setDeleting(null)}>
        <AlertDialogContent onCloseAutoFocus={(event) => focusAfterDialog(event, deletedId.current)}>
          <AlertDialogTitle>{t.deleteTitle}</AlertDialogTitle>
          <AlertDialogDescription>
            <bdi>{deleting?.title || t.untitled}</bdi> — {t.deleteBody}
          </AlertDialogDescription>
          <DialogFooter>
            <AlertDialogCancel asChild>
              <Button variant="outline">{t.cancel}</Button>
            </AlertDialogCancel>
            <AlertDialogAction asChild>
              <Button
                variant="destructive"
                data-testid="confirm-delete"
                onClick={() => {
                  if (deleting) void props.onDelete(deleting.id);
                }}
              >
                {t.delete}
              </Button>
            </AlertDialogAction>
          </DialogFooter>
        </AlertDialogContent>
      </AlertDialog>
    </nav>
  );
}
