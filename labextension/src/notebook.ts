/**
 * The parameters of a notebook: the names assigned in its cell tagged `parameters`
 * (papermill's convention), with their default values where they read as JSON.
 */

interface ICellLike {
  cell_type: string;
  source: string | string[];
  metadata?: { tags?: string[]; [key: string]: any };
}

/** A Python literal as a JSON value (`'north'`, `3`, `True`, `None`), or the text itself. */
export function pythonLiteral(text: string): any {
  const value = text.trim();
  const words: { [key: string]: any } = {
    True: true,
    False: false,
    None: null
  };
  if (value in words) {
    return words[value];
  }
  if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(value)) {
    return Number(value);
  }
  const quoted = value.match(/^(['"])(.*)\1$/s);
  if (quoted && !quoted[2].includes(quoted[1])) {
    return quoted[2].replace(/\\(.)/g, '$1');
  }
  return value;
}

/** Strips a `# comment` that is not inside a string. */
function withoutComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (quote) {
      if (char === '\\') {
        i++;
      } else if (char === quote) {
        quote = null;
      }
    } else if (char === '"' || char === "'") {
      quote = char;
    } else if (char === '#') {
      return line.slice(0, i);
    }
  }
  return line;
}

/** The top-level assignments of a parameters cell's source, in order. */
export function parametersOfSource(source: string): { [name: string]: any } {
  const found: { [name: string]: any } = {};
  for (const line of source.split('\n')) {
    const match = withoutComment(line).match(
      /^([A-Za-z_]\w*)\s*(?::[^=]+)?=(?!=)\s*(.*)$/
    );
    if (match) {
      found[match[1]] = pythonLiteral(match[2]);
    }
  }
  return found;
}

/** The parameters of a notebook (its cell tagged `parameters`), or `{}` without one. */
export function notebookParameters(notebook: { cells?: ICellLike[] }): {
  [name: string]: any;
} {
  const cell = (notebook.cells ?? []).find(
    candidate =>
      candidate.cell_type === 'code' &&
      (candidate.metadata?.tags ?? []).includes('parameters')
  );
  if (!cell) {
    return {};
  }
  const source = Array.isArray(cell.source)
    ? cell.source.join('')
    : cell.source;
  return parametersOfSource(source);
}
