/**
 * `node --import tsx tests/support/planBetween.ts '<json>'`: prints the plan's changes between two
 * sides (scripts/lib/planRun.ts `planChangesBetween`) as JSON. A process of its own, as the plan
 * CLI runs: the program is required as TypeScript through tsx, and the mock runtime is global.
 */
import { planChangesBetween, type PlanSide } from "../../scripts/lib/planRun";

const { projectRoot, stack, base, head } = JSON.parse(process.argv[2]) as { projectRoot: string; stack: string; base: PlanSide; head: PlanSide };
planChangesBetween(projectRoot, stack, base, head).then(
  (changes) => process.stdout.write(JSON.stringify(changes)),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
