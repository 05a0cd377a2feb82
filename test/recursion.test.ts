// No unbounded recursion in the device code: XS's stack is 448 to 512 slots on the chips, and a call chain that a
// peer can lengthen (nested JSON, a queue) ends the whole engine, which no try can catch. This finds every cycle in
// the call graph of src/ (calls of functions by name and of methods through `this`) and allows only those listed,
// each with what bounds it.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const BOUNDED: { [cycle: string]: string } = {
  // the application's own values, serialized: refused past LIMITS.depth (8) levels
  "objectJson <-> valueJson": "src/uiot/json.ts LIMITS.depth",
  // a publish that fails at once calls finish() from inside send(); finish() sends the next from a loop, guarded by
  // `sending`, so the chain is one level deep however long the queue (tested in test/uiot/shadow.test.ts)
  "Shadow.finish <-> Shadow.send": "src/uiot/shadow.ts Shadow.sending",
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

/** Caller -> callees, by name: `f` for functions, `Class.m` for methods called through `this`. */
function callGraph(root: string): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const f of files(root)) {
    const sf = ts.createSourceFile(f, readFileSync(f, "utf8"), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node, owner: string | null, cls: string | null): void => {
      let o = owner,
        c = cls;
      if (ts.isClassDeclaration(n) && n.name) c = n.name.text;
      if (
        (ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isGetAccessor(n) || ts.isSetAccessor(n)) &&
        n.name
      )
        o = ts.isFunctionDeclaration(n) ? n.name.getText() : `${c ?? "?"}.${n.name.getText()}`;
      if (
        ts.isVariableDeclaration(n) &&
        n.initializer &&
        (ts.isArrowFunction(n.initializer) || ts.isFunctionExpression(n.initializer))
      )
        o = n.name.getText();
      if (ts.isPropertyDeclaration(n) && n.initializer && ts.isArrowFunction(n.initializer))
        o = `${c ?? "?"}.${n.name.getText()}`;
      if (ts.isCallExpression(n) && o) {
        const e = n.expression;
        const callee = ts.isIdentifier(e)
          ? e.text
          : ts.isPropertyAccessExpression(e) && e.expression.kind === ts.SyntaxKind.ThisKeyword
            ? `${c ?? "?"}.${e.name.text}`
            : null;
        if (callee) (graph.get(o) ?? graph.set(o, new Set()).get(o)!).add(callee);
      }
      ts.forEachChild(n, (k) => visit(k, o, c));
    };
    visit(sf, null, null);
  }
  return graph;
}

/** The strongly connected components that are cycles (Tarjan's algorithm, with an explicit stack: no recursion). */
function cycles(graph: Map<string, Set<string>>): string[] {
  const index = new Map<string, number>(),
    low = new Map<string, number>(),
    onStack = new Set<string>(),
    stack: string[] = [];
  const found: string[] = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work: { v: string; edges: string[]; i: number }[] = [];
    const enter = (v: string) => {
      index.set(v, next);
      low.set(v, next++);
      stack.push(v);
      onStack.add(v);
      work.push({ v, edges: [...(graph.get(v) ?? [])].filter((w) => graph.has(w)), i: 0 });
    };
    enter(start);
    while (work.length) {
      const top = work[work.length - 1];
      if (top.i < top.edges.length) {
        const w = top.edges[top.i++];
        if (!index.has(w)) enter(w);
        else if (onStack.has(w)) low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        continue;
      }
      work.pop();
      if (work.length) low.set(work[work.length - 1].v, Math.min(low.get(work[work.length - 1].v)!, low.get(top.v)!));
      if (low.get(top.v) !== index.get(top.v)) continue;
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== top.v);
      if (scc.length > 1 || graph.get(top.v)?.has(top.v)) found.push(scc.sort().join(" <-> "));
    }
  }
  return found.sort();
}

describe("recursion in src/", () => {
  it("finds a cycle when there is one (the checker itself works)", () => {
    const g = new Map([
      ["a", new Set(["b"])],
      ["b", new Set(["a"])],
      ["c", new Set(["c"])],
      ["d", new Set(["a"])],
    ]);
    expect(cycles(g)).toEqual(["a <-> b", "c"]);
  });

  it("has no call cycle but the bounded ones listed", () => {
    expect(cycles(callGraph(join(__dirname, "..", "src")))).toEqual(Object.keys(BOUNDED).sort());
  });
});
