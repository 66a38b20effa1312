/**
 * `npm run local:images`: builds every image the local stack references (the proxy, the
 * workspace stand-in and Open WebUI; tags in policy/localImages.ts) on this machine's Docker
 * engine, from Debian packages, the pinned Caddy release and the locked Open WebUI wheels.
 * Idempotent: an image whose inputs have not changed is left alone. Needs root (debootstrap,
 * chroot), a running engine, and on the first run the network.
 *
 * `npm run local:images -- --relock-open-webui` remakes images/open-webui/requirements.lock for
 * the Open WebUI version in policy/localImages.ts instead (needs the network).
 */
import { IMAGE_BUILD_LOCK, buildLocalImages } from "./lib/localImageBuild";
import { acquireFileLock } from "./lib/fileLock";
import { relockOpenWebui } from "./lib/openWebuiImage";

async function main(argv: string[]): Promise<void> {
  const unknown = argv.filter((arg) => arg !== "--relock-open-webui");
  if (unknown.length > 0) throw new Error(`unknown argument ${unknown[0]}; usage: npm run local:images [-- --relock-open-webui]`);
  const started = Date.now();
  if (argv.includes("--relock-open-webui")) {
    const lock = await acquireFileLock(IMAGE_BUILD_LOCK, 10 * 60_000, "another image build");
    try {
      console.log(`local-images: ${relockOpenWebui()} (${((Date.now() - started) / 1000).toFixed(1)} s); npm run local:images builds the image from it`);
    } finally {
      await lock.release();
    }
    return;
  }
  const outcomes = await buildLocalImages();
  const built = outcomes.filter((outcome) => outcome.action === "built").length;
  console.log(`local-images: ${built} built, ${outcomes.length - built} up to date, ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(`local-images: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
});
