import { describe, expect, it } from "vitest"
import { RetryBudget } from "../../src/internal/retryBudget.js"

const options = { ratio: 0.2, minPerSecond: 1, windowMillis: 10_000 }

describe("RetryBudget.idle: a budget the retrier may forget", () => {
  it("is idle when new, busy while a request or retry is in its window, idle once the window has passed", () => {
    const budget = new RetryBudget(options)
    expect(budget.idle(0)).toBe(true)
    budget.deposit(5_000)
    expect(budget.idle(5_000)).toBe(false)
    expect(budget.idle(14_999)).toBe(false)
    expect(budget.idle(15_000)).toBe(true)
    expect(budget.tryWithdraw(20_000)).toBe(true)
    expect(budget.idle(29_999)).toBe(false)
    expect(budget.idle(30_000)).toBe(true)
  })

  it("an idle budget grants what a new one grants, so forgetting it changes nothing", () => {
    const spent = new RetryBudget(options)
    for (let i = 0; i < 100; i++) spent.deposit(1_000)
    while (spent.tryWithdraw(1_000)) {
      // spends the window's allowance
    }
    expect(spent.remaining(1_000)).toBe(0)
    expect(spent.idle(11_000)).toBe(true)
    expect(spent.remaining(11_000)).toBe(new RetryBudget(options).remaining(11_000))
  })
})
