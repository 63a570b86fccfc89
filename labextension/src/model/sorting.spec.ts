import { describe, expect, it } from 'vitest';

import { sortParam } from './sorting';

describe('sortParam', () => {
  it("names the server's key, with a minus for descending", () => {
    expect(sortParam('name', true)).toBe('name');
    expect(sortParam('name', false)).toBe('-name');
    expect(sortParam('next', true)).toBe('next_fire');
    expect(sortParam('last', false)).toBe('-last_run');
    expect(sortParam('id', true)).toBe('id');
  });
});
