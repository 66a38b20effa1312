/**
 * `npm run schema`: writes schema/client.schema.json, the editor JSON Schema for client files,
 * generated from the zod schema that validates them (config/clientFile.ts), so editors and
 * `npm run check` agree. `npm run schema -- --check` fails when the committed file is stale.
 */
import * as fs from "fs";
import * as path from "path";
import { z } from "zod";
import { clientFileSchema } from "../config/clientFile";

/** Where the schema is committed; client files point at it with a yaml-language-server comment. */
export const CLIENT_SCHEMA_PATH = path.join(__dirname, "..", "schema", "client.schema.json");

/** The JSON Schema text for client files (input side: defaults are optional in the file). */
export function clientJsonSchemaText(): string {
  const schema = z.toJSONSchema(clientFileSchema, { io: "input", target: "draft-07", unrepresentable: "any" });
  return JSON.stringify(schema, null, 2) + "\n";
}

function main(): void {
  const expected = clientJsonSchemaText();
  if (process.argv.includes("--check")) {
    const current = fs.existsSync(CLIENT_SCHEMA_PATH) ? fs.readFileSync(CLIENT_SCHEMA_PATH, "utf8") : "";
    if (current !== expected) {
      console.error(`${path.relative(process.cwd(), CLIENT_SCHEMA_PATH)} is stale: run \`npm run schema\` and commit the result`);
      process.exit(1);
    }
    console.log(`${path.relative(process.cwd(), CLIENT_SCHEMA_PATH)} is up to date`);
    return;
  }
  fs.mkdirSync(path.dirname(CLIENT_SCHEMA_PATH), { recursive: true });
  fs.writeFileSync(CLIENT_SCHEMA_PATH, expected);
  console.log(`wrote ${path.relative(process.cwd(), CLIENT_SCHEMA_PATH)}`);
}

if (require.main === module) main();
