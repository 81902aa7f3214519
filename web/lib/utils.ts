import { clsx, type ClassValue } from "clsx";
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
