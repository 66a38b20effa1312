/**
 * The Open WebUI image's lock file: rendering from pip's installation report, parsing with
 * located messages, and the committed lock itself (pinned, hashed, the release of
 * policy/localImages.ts, and none of the multi-GB machine-learning stack).
 */
import { describe, expect, it } from "vitest";
import { OPEN_WEBUI_VERSION } from "../policy/localImages";
import { readOpenWebuiLock } from "../scripts/lib/openWebuiImage";
import { normaliseName, packagesFromPipReport, parseLock, renderLock } from "../scripts/lib/pythonLock";

const HASH_A = "a".repeat(64);
const HASH_B = "b".repeat(64);

function reportEntry(name: string, version: string, hash: string, url = `https://files.example/${name}-${version}-py3-none-any.whl`) {
  return { metadata: { name, version }, download_info: { url, archive_info: { hash: `sha256=${hash}`, hashes: { sha256: hash } } } };
}

describe("packagesFromPipReport", () => {
  it("takes name, version and the wheel's sha256 of every entry, names normalised", () => {
    const report = { version: "1", install: [reportEntry("Typing_Extensions", "4.16.0", HASH_A), reportEntry("PyJWT", "2.13.0", HASH_B)] };
    expect(packagesFromPipReport(report)).toEqual([
      { name: "typing-extensions", version: "4.16.0", sha256: HASH_A },
      { name: "pyjwt", version: "2.13.0", sha256: HASH_B },
    ]);
  });

  it("reads the older single `hash` field too", () => {
    const entry = { metadata: { name: "six", version: "1.17.0" }, download_info: { url: "file:///w/six-1.17.0-py3-none-any.whl", archive_info: { hash: `sha256=${HASH_A}` } } };
    expect(packagesFromPipReport({ install: [entry] })).toEqual([{ name: "six", version: "1.17.0", sha256: HASH_A }]);
  });

  it("refuses entries without a sha256, source distributions and non-reports", () => {
    const noHash = { metadata: { name: "six", version: "1.17.0" }, download_info: { url: "x.whl", archive_info: {} } };
    expect(() => packagesFromPipReport({ install: [noHash] })).toThrow("six==1.17.0 has no sha256 archive hash");
    expect(() => packagesFromPipReport({ install: [reportEntry("pydub", "0.25.1", HASH_A, "https://files.example/pydub-0.25.1.tar.gz")] })).toThrow(
      "pydub==0.25.1 is not a wheel",
    );
    expect(() => packagesFromPipReport({ environment: {} })).toThrow("not a pip installation report");
  });
});

describe("renderLock / parseLock", () => {
  it("renders sorted, hashed lines under the header, and parses them back", () => {
    const packages = [
      { name: "zstandard", version: "0.25.0", sha256: HASH_B },
      { name: "aiohttp", version: "3.14.5", sha256: HASH_A },
    ];
    const text = renderLock(packages, ["made by a test", ""]);
    expect(text).toBe(`# made by a test\n#\naiohttp==3.14.5 --hash=sha256:${HASH_A}\nzstandard==0.25.0 --hash=sha256:${HASH_B}\n`);
    expect(parseLock(text)).toEqual({ packages: [packages[1], packages[0]] });
  });

  it("refuses the same package at two versions", () => {
    expect(() =>
      renderLock(
        [
          { name: "six", version: "1.16.0", sha256: HASH_A },
          { name: "six", version: "1.17.0", sha256: HASH_B },
        ],
        [],
      ),
    ).toThrow("six is locked twice: 1.16.0 and 1.17.0");
  });

  it("names every line that is not pinned and hashed, with file and line", () => {
    const text = ["# header", "numpy>=2 --hash=sha256:" + HASH_A, "six==1.17.0", `Six==1.17.0 --hash=sha256:${HASH_B}`, `six==1.17.0 --hash=sha256:${HASH_A}`].join("\n");
    expect(parseLock(text, "images/x/requirements.lock")).toEqual({
      problems: [
        `images/x/requirements.lock:2: expected "name==version --hash=sha256:<64 hex digits>", got "numpy>=2 --hash=sha256:${HASH_A.slice(0, 57)}"`,
        'images/x/requirements.lock:3: expected "name==version --hash=sha256:<64 hex digits>", got "six==1.17.0"',
        "images/x/requirements.lock:5: six is already locked on line 4",
      ],
    });
    expect(parseLock("# only comments\n")).toEqual({ problems: ["requirements.lock: no packages"] });
  });

  it("normalises names as PEP 503 does", () => {
    expect(normaliseName("Foo.Bar__baz-Qux")).toBe("foo-bar-baz-qux");
  });
});

describe("the committed Open WebUI lock", () => {
  const lock = readOpenWebuiLock();
  const packages = "packages" in lock ? lock.packages : [];

  it("parses: every line pinned with a sha256", () => {
    expect("problems" in lock ? lock.problems : []).toEqual([]);
    expect(packages.length).toBeGreaterThan(100);
  });

  it("pins the release policy/localImages.ts names", () => {
    expect(packages.find((pkg) => pkg.name === "open-webui")?.version).toBe(OPEN_WEBUI_VERSION);
  });

  it("holds the server's own stack and none of the machine-learning set the full install pulls", () => {
    const names = new Set(packages.map((pkg) => pkg.name));
    for (const needed of ["fastapi", "uvicorn", "sqlalchemy", "alembic", "aiosqlite", "bcrypt", "python-socketio"]) expect(names.has(needed), needed).toBe(true);
    for (const heavy of ["torch", "sentence-transformers", "transformers", "chromadb", "onnxruntime", "accelerate", "faster-whisper", "opencv-python-headless"]) {
      expect(names.has(heavy), heavy).toBe(false);
    }
    expect([...names].filter((name) => name.startsWith("nvidia-"))).toEqual([]);
  });
});
