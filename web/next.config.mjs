// The app is exported as static files that the Python service serves at "/".
// `next dev` instead forwards API paths to a running service.
import { PHASE_DEVELOPMENT_SERVER } from "next/constants.js";

const API_PREFIXES = [
  "auth",
  "calendar",
  "chat",
  "conversations",
  "feedback",
  "health",
  "me",
  "messages",
  "search",
  "texts",
];

export default function config(phase) {
  if (phase === PHASE_DEVELOPMENT_SERVER) {
    const target = process.env.TORAH_STUDY_API ?? "http://127.0.0.1:8000";
    return {
      async rewrites() {
        return API_PREFIXES.flatMap((prefix) => [
          { source: `/${prefix}`, destination: `${target}/${prefix}` },
          { source: `/${prefix}/:path*`, destination: `${target}/${prefix}/:path*` },
        ]);
      },
    };
  }
  return { output: "export", images: { unoptimized: true }, poweredByHeader: false };
}
