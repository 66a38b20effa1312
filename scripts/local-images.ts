/**
 * `npm run local:images`: builds every image the local stack references (the proxy and the
 * workspace stand-in, tags in policy/localImages.ts) on this machine's Docker engine, from Debian
 * packages and the pinned Caddy release. Idempotent: an image whose inputs have not changed is
 * left alone. Needs root (debootstrap), a running engine, and on the first run the network.
 */
import { buildLocalImages } from "./lib/localImageBuild";

async function main(): Promise<void> {
  const started = Date.now();
  const outcomes = await buildLocalImages();
  const built = outcomes.filter((outcome) => outcome.action === "built").length;
  console.log(`local-images: ${built} built, ${outcomes.length - built} up to date, ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((error: unknown) => {
  console.error(`local-images: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
