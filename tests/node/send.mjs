// Sends one customer's calls through @segment/analytics-node to HOST, then flushes.
// usage: node send.mjs HOST WRITE_KEY OPTIONS_JSON ; exit 1 on any error the library reports
// With one event per batch the library sends its requests in parallel, in no set order; the
// calls are then made one after the other, each once the last was delivered, as a server that
// reports events as they happen would make them.
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, optionsJson] = process.argv.slice(2)
const options = JSON.parse(optionsJson || '{}')
const analytics = new Analytics({ writeKey, host, maxRetries: 1, ...options })
const errors = []
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))
const inTurn = options.maxEventsInBatch === 1

async function call (method, params) {
  if (!inTurn) return analytics[method](params)
  await new Promise((resolve) => analytics[method](params, (err) => {
    if (err) errors.push(String(err?.reason ?? err?.message ?? err))
    resolve()
  }))
}

const context = { timezone: 'America/New_York', device: { token: 'apns-node' } }
await call('identify', { userId: 'noa', traits: { email: 'noa@example.com' }, context })
await call('track', { userId: 'noa', event: 'Product Added', properties: { product_id: 'p9', price: 30, quantity: 2 } })
await call('page', { userId: 'noa', category: 'Shop', name: 'Cart', properties: { url: 'https://shop.example/cart' } })
await call('screen', { userId: 'noa', name: 'Home' })
await call('group', { userId: 'noa', groupId: 'g9', traits: { name: 'Initech' } })
await call('alias', { userId: 'noa', previousId: 'noa-before' })
await call('track', { anonymousId: 'visitor-9', event: 'cart_add', properties: { value: 25 } })
await call('track', { userId: 'noa', event: 'Order Completed', properties: { order_id: 'o9', revenue: 60 } })
await analytics.closeAndFlush({ timeout: 10000 })
if (errors.length) {
  console.error(errors.join('\n'))
  process.exit(1)
}
