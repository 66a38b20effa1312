/**
 * The images the local stack runs, built on this machine by `npm run local:images` (no registry
 * is needed). One place for the tags, so the program, the tests and the build script agree.
 */
import { CADDY_VERSION } from "./caddyRelease";

/** The proxy: the pinned Caddy release plus busybox (sh, wget for the health check). */
export const LOCAL_PROXY_IMAGE = `mai-local/caddy:${CADDY_VERSION}`;

/** The workspace stand-in: a small program honouring the part of mAI's contract the stack uses (fast tests, benches). */
export const LOCAL_WORKSPACE_IMAGE = "mai-local/workspace:1";

/**
 * The Open WebUI release the local image installs from PyPI; images/open-webui/requirements.lock
 * pins it and every wheel it needs. Changing it needs a new lock (`npm run local:images -- --relock-open-webui`).
 */
export const OPEN_WEBUI_VERSION = "0.12.4";

/** The real app: Open WebUI from PyPI in its slim mode (scripts/lib/openWebuiImage.ts); the local stack's default image. */
export const LOCAL_OPEN_WEBUI_IMAGE = `mai-local/open-webui:${OPEN_WEBUI_VERSION}`;

/** Every image the local stack references or its tests run. */
export const LOCAL_IMAGES: readonly string[] = [LOCAL_PROXY_IMAGE, LOCAL_WORKSPACE_IMAGE, LOCAL_OPEN_WEBUI_IMAGE];

/** Image label holding the hash of everything an image was built from; a rebuild happens only when it differs. */
export const IMAGE_CONTENT_LABEL = "mai.content-hash";
