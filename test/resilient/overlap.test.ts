import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as FastCheck from "effect/FastCheck"
import * as Stream from "effect/Stream"
import { dropRepeated } from "../../src/internal/resilient/continuation.js"
import { dedupe } from "../../src/internal/resilient/overlap.js"
import type { StreamChunk } from "../../src/Llm.js"

const squash = (text: string) => text.toLowerCase().replace(/\s+/g, " ").trim()

// Sentences of lower-case words: no word repeats inside one answer, so an overlap can only come from a restart.
const word = FastCheck.stringMatching(/^[a-z]{2,7}$/)
const sentence = FastCheck.uniqueArray(word, { minLength: 2, maxLength: 6 }).map((words) => {
  const [first = "", ...rest] = words
  return `${first[0]!.toUpperCase()}${first.slice(1)} ${rest.join(" ")}.`
})
const answer = FastCheck.uniqueArray(sentence, { minLength: 1, maxLength: 4 }).filter((sentences) =>
  new Set(sentences.flatMap((s) => s.toLowerCase().replace(".", "").split(" "))).size
    === sentences.flatMap((s) => s.split(" ")).length
)
// A different rendering of the same text: other case, other whitespace.
const rendered = (text: string, upper: boolean, spaces: string) =>
  (upper ? text.toUpperCase() : text).replace(/ /g, spaces)

const viaStream = (delivered: string, pieces: ReadonlyArray<string>) =>
  Effect.map(
    Stream.runCollect(
      dropRepeated(delivered)(
        Stream.fromIterable<StreamChunk>([
          ...pieces.map((text): StreamChunk => ({ _tag: "ContentDelta", text })),
          {
            _tag: "StreamEnd",
            finishReason: "stop",
            usage: { inputTokens: 0, outputTokens: 0, totalTokens: 0 },
            model: "m",
            provider: "p",
            latencyMs: 0
          }
        ])
      )
    ),
    (chunks) => Chunk.toReadonlyArray(chunks).map((chunk) => chunk._tag === "ContentDelta" ? chunk.text : "").join("")
  )

describe("continuation de-duplication", () => {
  it("the issue's cases come out once", () => {
    expect("Hi, " + dedupe("Hi, ", "Hi, there")).toBe("Hi, there")
    expect("The answer is" + dedupe("The answer is", "the answer is 42.")).toBe("The answer is 42.")
    expect("Hello, wor" + dedupe("Hello, wor", "ld, said the program.")).toBe("Hello, world, said the program.")
    expect("First. The cat" + dedupe("First. The cat", "the  cat sat.")).toBe("First. The cat sat.")
    expect("Retries and breaker" + dedupe("Retries and breaker", "s are useful.")).toBe(
      "Retries and breakers are useful."
    )
  })

  it("a restart from the start or from a sentence start, in any case and spacing, is dropped", () =>
    FastCheck.assert(
      FastCheck.property(
        answer,
        FastCheck.nat(),
        FastCheck.nat(),
        sentence,
        FastCheck.boolean(),
        FastCheck.constantFrom(" ", "  ", "\n"),
        (sentences, cutAt, restartAt, tail, upper, spaces) => {
          const full = sentences.join(" ")
          const cut = 1 + (cutAt % full.length)
          const delivered = full.slice(0, cut)
          // Restart at the beginning of a sentence at or before the cut.
          const starts = sentences.map((_, i) => sentences.slice(0, i).join(" ").length + (i > 0 ? 1 : 0))
            .filter((start) => start < cut && delivered.slice(start).trim() !== "")
          if (starts.length === 0) return
          const start = starts[restartAt % starts.length]!
          const continuation = rendered(full.slice(start), upper, spaces) + " " + tail
          const combined = delivered + dedupe(delivered, continuation)
          expect(squash(combined)).toBe(squash(rendered(full, false, " ") + " " + tail))
        }
      )
    ))

  it("a continuation that repeats nothing passes unchanged", () =>
    FastCheck.assert(
      FastCheck.property(answer, answer, (first, second) => {
        const delivered = first.join(" ")
        const continuation = " " + second.join(" ")
        if (squash(delivered).includes(squash(second[0]!).slice(0, 4))) return
        expect(dedupe(delivered, continuation)).toBe(continuation)
      })
    ))

  it.effect("the stream filter gives what the whole-text function gives, however the text is split", () =>
    Effect.promise(() =>
      FastCheck.assert(
        FastCheck.asyncProperty(
          answer,
          FastCheck.nat(),
          FastCheck.array(FastCheck.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 40 }),
          async (sentences, cutAt, sizes) => {
            const full = sentences.join(" ")
            const cut = 1 + (cutAt % full.length)
            const delivered = full.slice(0, cut)
            const continuation = full.toUpperCase() + " END."
            const pieces: Array<string> = []
            let at = 0
            for (let i = 0; at < continuation.length; i++) {
              const size = sizes[i % sizes.length]!
              pieces.push(continuation.slice(at, at + size))
              at += size
            }
            const streamed = await Effect.runPromise(viaStream(delivered, pieces))
            expect(streamed).toBe(dedupe(delivered, continuation))
            expect(squash(delivered + streamed)).toBe(squash(full + " END."))
          }
        )
      )
    ))
})
