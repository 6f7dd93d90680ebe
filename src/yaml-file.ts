/** Read and parse a YAML (or JSON) file; failures become `makeError` with a message naming the file. */
import { readFileSync } from 'fs';
import { parse } from 'yaml';

export function readYamlFile(path: string, what: string, makeError: (message: string) => Error): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw makeError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
  try {
    return parse(text);
  } catch (err) {
    throw makeError(`${path}: invalid YAML: ${(err as Error).message}`);
  }
}
