/**
 * Makes resource registration under the mock runtime cheap. Profiling `npm run plan` showed most
 * of the time in stack traces, not in the program: per registration the SDK creates several
 * `new Error().stack` strings (runtime/debuggable.js `debuggablePromise` records one per tracked
 * promise for its leak report, runtime/resource.js pre-allocates an Error for RPC failures and
 * `Resource.callsites` records the source position for the engine), and with tsx's source maps
 * enabled every one of them is mapped back to TypeScript through Node's source-map support.
 * None of that output is used by the plan: there is no engine to send positions to, leak
 * reports are only printed with PULUMI_DEBUG_PROMISE_LEAKS, and the plan prints error messages,
 * never stack traces. Both switches below are documented platform settings (V8's
 * `Error.stackTraceLimit`, Node's `process.setSourceMapsEnabled`); the SDK's own
 * `Resource.callsites` still raises the limit for its single capture, which stays cheap
 * without source-map translation.
 */
export function applyFastRegistration(): void {
  Error.stackTraceLimit = 0;
  process.setSourceMapsEnabled(false);
}
