import { clsx, type ClassValue } from "clsx";
import { useEffect, useState } from "react";
import { twMerge } from "tailwind-merge";

export function cn(...inputs: ClassValue[]): string {
  return twMerge(clsx(inputs));
}

/** Build the sefaria.org address of a ref the way the service builds it. */
export function sefariaUrl(ref: string): string {
  const words = ref.split(" ");
  const last = words[words.length - 1] ?? "";
  const address = words.length > 1 && /^\d/.test(last) ? last : "";
  const title = address ? words.slice(0, -1).join(" ") : ref;
  let path = title.replace(/ /g, "_");
  if (address) path += "." + address.replace(/:/g, ".");
  const encoded = encodeURIComponent(path)
    .replace(/%2C/g, ",")
    .replace(/[!*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
  return "https://www.sefaria.org/" + encoded;
}

/** Track whether a CSS media query matches (true before the first check). */
export function useMediaQuery(query: string): boolean {
  const [matches, setMatches] = useState(true);
  useEffect(() => {
    const list = window.matchMedia(query);
    const update = () => setMatches(list.matches);
    update();
    list.addEventListener("change", update);
    return () => list.removeEventListener("change", update);
  }, [query]);
  return matches;
}
