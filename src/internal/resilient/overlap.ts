/**
 * How much of a continuation repeats text the caller already has. A model asked to continue sometimes starts over —
 * from the beginning, or from the start of the sentence it was in — or re-emits the last words, often with other
 * case or spacing. Text is compared normalized (lower case, whitespace runs as one space); a repeat may begin at the
 * start of the delivered text, at a sentence start, or at a word start near its end when the repeat is long enough
 * not to be a coincidence.
 * @internal
 */

// Below this many characters an overlap that does not start a sentence may be coincidence (a space, a word).
const MIN_OVERLAP = 8
// How far from the end of the delivered text a re-emitted tail may begin.
const TAIL = 64

const isSpace = (char: string): boolean => char === " " || char === "\n" || char === "\t" || char === "\r"

interface Normalized {
  /** Lower case, whitespace runs as one space, no leading whitespace. */
  readonly text: string
  /** For each normalized character, the raw index just after the characters it stands for. */
  readonly ends: ReadonlyArray<number>
  /** For each raw index, the normalized index of the first character at or after it. */
  readonly starts: ReadonlyArray<number>
}

const normalize = (raw: string): Normalized => {
  let text = ""
  const ends: Array<number> = []
  const starts: Array<number> = []
  for (let i = 0; i < raw.length; i++) {
    starts.push(text.length)
    const char = raw[i]!
    if (isSpace(char)) {
      if (text === "") continue
      if (text.endsWith(" ")) {
        ends[ends.length - 1] = i + 1
        continue
      }
      text += " "
    } else {
      text += char.toLowerCase()
    }
    ends.push(i + 1)
  }
  starts.push(text.length)
  return { text, ends, starts }
}

const SENTENCE_END = /[.!?:;\n]["')\]]?$/

/** Raw positions in `delivered` where a repeat may begin, first (longest repeat) first. */
const candidates = (delivered: string): Array<number> => {
  const positions: Array<number> = []
  for (let i = 0; i < delivered.length; i++) {
    if (isSpace(delivered[i]!) || (i > 0 && !isSpace(delivered[i - 1]!))) continue
    const before = delivered.slice(0, i).trimEnd()
    const sentenceStart = before === "" || SENTENCE_END.test(before)
    const nearEnd = delivered.length - i <= TAIL && delivered.trimEnd().length - i >= MIN_OVERLAP
    if (sentenceStart || nearEnd) positions.push(i)
  }
  return positions
}

/** A prepared `delivered` text, to decide on continuations of it. @internal */
export interface Delivered {
  readonly raw: string
  readonly targets: ReadonlyArray<string>
}

/** @internal */
export const prepare = (delivered: string): Delivered => {
  const normalized = normalize(delivered)
  return {
    raw: delivered,
    targets: candidates(delivered)
      .map((position) => normalized.text.slice(normalized.starts[position]).trimEnd())
      .filter((target) => target !== "")
  }
}

/**
 * How many leading characters of `continuation` repeat the delivered text: a number once it is known, `undefined`
 * while the continuation so far could still be a repeat (more text decides). With `final`, the continuation is all
 * there is.
 * @internal
 */
export const repeatedLength = (delivered: Delivered, continuation: string, final: boolean): number | undefined => {
  const buffered = normalize(continuation)
  let undecided = false
  for (const target of delivered.targets) {
    if (buffered.text.length >= target.length) {
      if (buffered.text.startsWith(target)) return undecided ? undefined : buffered.ends[target.length - 1]!
    } else if (target.startsWith(buffered.text)) {
      if (final) return continuation.length
      undecided = true
    }
  }
  return undecided ? undefined : 0
}

/** The delivered text ends in whitespace: the continuation's leading whitespace would double it. @internal */
export const endsInSpace = (delivered: string): boolean => delivered !== "" && isSpace(delivered[delivered.length - 1]!)

/** The whole continuation at once, without what repeats `delivered`. @internal */
export const dedupe = (delivered: string, continuation: string): string => {
  const prepared = prepare(delivered)
  const rest = continuation.slice(repeatedLength(prepared, continuation, true) ?? 0)
  return endsInSpace(delivered) ? rest.trimStart() : rest
}
