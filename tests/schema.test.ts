import * as fs from "fs";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { clientFileSchema } from "../config/clientFile";
import { CLIENT_SCHEMA_PATH, clientJsonSchemaText } from "../scripts/schema";

describe("schema/client.schema.json", () => {
  it("is up to date with the zod schema (run `npm run schema` when this fails)", () => {
    expect(fs.readFileSync(CLIENT_SCHEMA_PATH, "utf8")).toBe(clientJsonSchemaText());
  });

  it("describes every client field, requires name and port, and refuses unknown keys", () => {
    const schema = JSON.parse(clientJsonSchemaText());
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(clientFileSchema.shape).sort());
    expect(schema.required).toEqual(["name", "port"]);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.resources.additionalProperties).toBe(false);
    expect(schema.properties.status.enum).toEqual(["active", "suspended"]);
    expect(schema.properties.port).toMatchObject({ type: "integer", minimum: 1024, maximum: 65535 });
    for (const [name, property] of Object.entries<{ description?: string }>(schema.properties)) {
      expect(property.description, `${name} has a description for editors`).toBeTruthy();
    }
  });

  it("is the schema the client files point their editor at", () => {
    const clientsDir = path.join(__dirname, "..", "clients");
    const files = fs.existsSync(clientsDir) ? fs.readdirSync(clientsDir).filter((f) => /\.ya?ml$/.test(f)) : [];
    for (const file of files) {
      const firstLine = fs.readFileSync(path.join(clientsDir, file), "utf8").split("\n")[0];
      expect(firstLine, file).toBe("# yaml-language-server: $schema=../schema/client.schema.json");
    }
  });
});
