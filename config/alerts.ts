/**
 * The alert webhook (secret stack config `alertWebhookUrl`): where each host posts its alerts.
 * Checked before anything is declared; the value is never echoed (it is a credential: Slack's
 * and ntfy's URLs grant posting rights).
 */

/** Secret config key of the webhook URL. */
export const ALERT_WEBHOOK_CONFIG_KEY = "alertWebhookUrl";

/** Why `url` cannot be the alert webhook, or undefined. Never echoes the URL. */
export function webhookUrlProblem(url: string): string | undefined {
  const hidden = "(value not shown: it is a secret)";
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `expected an http(s) URL ${hidden}`;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return `expected an http(s) URL ${hidden}`;
  if (/[\s"'\\]/.test(url)) return `the URL must not contain spaces, quotes or backslashes ${hidden}`;
  return undefined;
}
