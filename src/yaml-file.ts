/**
 * Read and parse a YAML (or JSON) file; failures become `makeError` with one line naming the file
 * and the line. The parser never prints anything itself: what it would only warn about (a tag such
 * as `!!js/function`, which it would silently read as text) is refused like any other error.
 */
import { readFileSync } from 'fs';
import { parseDocument, type YAMLError } from 'yaml';

const PLAIN_VALUES = "mailover's files hold text, numbers, true/false, lists and mappings only";

export function readYamlFile(path: string, what: string, makeError: (message: string) => Error): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw makeError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  // 'error': warnings are collected (and refused below), never printed; 'silent' would also drop errors such as a second document.
  const doc = parseDocument(text, { logLevel: 'error' });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) throw makeError(`${path}: invalid YAML: ${describe(problem, text)}`);
  try {
    return doc.toJS();
  } catch (err) {
    throw makeError(`${path}: invalid YAML: ${(err as Error).message}`);
  }
}

/** One line: what is wrong and where (the parser's own message adds a source excerpt over several lines). */
function describe(problem: YAMLError, text: string): string {
  const at = problem.linePos ? ` at line ${problem.linePos[0].line}, column ${problem.linePos[0].col}` : '';
  if (problem.code === 'TAG_RESOLVE_FAILED' || problem.code === 'BAD_COLLECTION_TYPE') {
    const tag = text.slice(problem.pos[0], problem.pos[1]).trim();
    return `unsupported tag ${tag.length > 60 ? `${tag.slice(0, 60)}…` : tag}${at} (${PLAIN_VALUES})`;
  }
  if (problem.code === 'MULTIPLE_DOCS') return `a second document starts${at} (a mailover file is one document: remove the '---' line)`;
  const message = problem.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
  return `${message}${at}`;
}
