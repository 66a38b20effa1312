/** Placeholder: filled in after profiling. */
export function applyFastRegistration(): void {}
