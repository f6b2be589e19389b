/**
 * Messages both ways between @effect/ai's `Prompt` and this library's `ChatMessage`s.
 * @internal
 */
import type * as Prompt from "@effect/ai/Prompt"
import * as Either from "effect/Either"
import * as Encoding from "effect/Encoding"
import type { ChatMessage, CompletionRequestInput, ContentPart, ImagePart } from "../../Llm.js"
import { messageText } from "../../Llm.js"

type MessageInput = CompletionRequestInput["messages"][number]
type ContentPartInput = Exclude<NonNullable<MessageInput["content"]>, string>[number]

const imageTypes = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"])
type ImageMediaType = NonNullable<ImagePart["mediaType"]>
const isImageType = (mediaType: string): mediaType is ImageMediaType => imageTypes.has(mediaType)

/** Where a prompt part has no equivalent here: the path in the prompt and why. @internal */
export interface PromptIssue {
  readonly path: string
  readonly message: string
}

const imageOf = (part: Prompt.FilePart, path: string): Either.Either<ContentPartInput, PromptIssue> => {
  const { data, mediaType } = part
  if (!mediaType.startsWith("image/")) {
    return Either.left({ path, message: `is a ${mediaType} file; only images (png, jpeg, gif, webp) are supported` })
  }
  if (data instanceof URL) return Either.right({ type: "image", url: data.toString() })
  if (typeof data === "string" && /^(https?|data):/.test(data)) return Either.right({ type: "image", url: data })
  if (!isImageType(mediaType)) {
    return Either.left({ path, message: `has media type ${mediaType}; inline images must be png, jpeg, gif or webp` })
  }
  return Either.right({
    type: "image",
    data: typeof data === "string" ? data : Encoding.encodeBase64(data),
    mediaType
  })
}

// OpenAI's and Anthropic's tool results are text: a structured result travels as its JSON (what @effect/ai's own
// providers send), and comes back parsed.
const resultText = (result: unknown): string => JSON.stringify(result) ?? "null"

const resultValue = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const nonBlank = (text: string): boolean => text.trim().length > 0

/**
 * An @effect/ai prompt as this library's messages. Reasoning parts and provider-executed tool results are left out
 * (no provider here takes them back); files other than images have no equivalent.
 * @internal
 */
export const fromPrompt = (prompt: Prompt.Prompt): Either.Either<ReadonlyArray<MessageInput>, PromptIssue> => {
  const messages: Array<MessageInput> = []
  for (const [index, message] of prompt.content.entries()) {
    const at = `prompt.content[${index}]`
    switch (message.role) {
      case "system": {
        messages.push({ role: "system", content: message.content })
        break
      }
      case "user": {
        const parts: Array<ContentPartInput> = []
        for (const [partIndex, part] of message.content.entries()) {
          if (part.type === "text") {
            if (nonBlank(part.text)) parts.push({ type: "text", text: part.text })
            continue
          }
          const image = imageOf(part, `${at}.content[${partIndex}]`)
          if (Either.isLeft(image)) return Either.left(image.left)
          parts.push(image.right)
        }
        const onlyText = parts.every((part) => part.type === "text")
        messages.push({
          role: "user",
          content: onlyText ? parts.map((part) => (part.type === "text" ? part.text : "")).join("") : parts
        })
        break
      }
      case "assistant": {
        let text = ""
        const toolCalls: Array<{ id: string; name: string; arguments: string }> = []
        for (const [partIndex, part] of message.content.entries()) {
          switch (part.type) {
            case "text":
              text += part.text
              break
            case "tool-call":
              if (!part.providerExecuted) {
                toolCalls.push({ id: part.id, name: part.name, arguments: JSON.stringify(part.params ?? {}) })
              }
              break
            case "file":
              return Either.left({ path: `${at}.content[${partIndex}]`, message: "files are only accepted from users" })
            case "reasoning":
            case "tool-result":
              break
          }
        }
        if (!nonBlank(text) && toolCalls.length === 0) break
        messages.push({
          role: "assistant",
          ...(nonBlank(text) ? { content: text } : {}),
          ...(toolCalls.length > 0 ? { toolCalls } : {})
        })
        break
      }
      case "tool": {
        for (const part of message.content) {
          messages.push({ role: "tool", toolCallId: part.id, content: resultText(part.result) })
        }
        break
      }
    }
  }
  return Either.right(messages)
}

const filePartOf = (part: ContentPart): Prompt.UserMessagePartEncoded => {
  if (part.type === "text") return { type: "text", text: part.text }
  if (part.data !== undefined) {
    return {
      type: "file",
      mediaType: part.mediaType ?? "image/*",
      data: Encoding.decodeBase64(part.data).pipe(
        Either.getOrElse(() => new Uint8Array())
      )
    }
  }
  const url = part.url ?? ""
  const inline = /^data:(image\/[a-z]+);base64,(.*)$/s.exec(url)
  if (inline !== null) {
    return {
      type: "file",
      mediaType: inline[1]!,
      data: Encoding.decodeBase64(inline[2]!).pipe(Either.getOrElse(() => new Uint8Array()))
    }
  }
  return { type: "file", mediaType: part.mediaType ?? "image/*", data: new URL(url) }
}

const argumentsValue = (text: string): unknown => (text.trim() === "" ? {} : JSON.parse(text))

/**
 * Validated messages as an @effect/ai prompt. Images become file parts (bytes, or the URL); a tool result names its
 * tool from the call it answers, which validation guarantees is earlier in the conversation.
 * @internal
 */
export const toPrompt = (messages: ReadonlyArray<ChatMessage>): ReadonlyArray<Prompt.MessageEncoded> => {
  const toolNames = new Map<string, string>()
  return messages.map((message): Prompt.MessageEncoded => {
    switch (message.role) {
      case "system":
        return { role: "system", content: messageText(message) }
      case "user":
        return {
          role: "user",
          content: typeof message.content === "string" ? message.content : (message.content ?? []).map(filePartOf)
        }
      case "assistant": {
        const content: Array<Prompt.AssistantMessagePartEncoded> = []
        const text = messageText(message)
        if (text !== "") content.push({ type: "text", text })
        for (const call of message.toolCalls ?? []) {
          toolNames.set(call.id, call.name)
          content.push({ type: "tool-call", id: call.id, name: call.name, params: argumentsValue(call.arguments) })
        }
        return { role: "assistant", content }
      }
      case "tool": {
        const id = message.toolCallId ?? ""
        return {
          role: "tool",
          content: [{
            type: "tool-result",
            id,
            name: toolNames.get(id) ?? "",
            isFailure: false,
            result: resultValue(messageText(message)),
            providerExecuted: false
          }]
        }
      }
    }
  })
}
