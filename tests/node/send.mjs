// Sends one customer's calls through @segment/analytics-node to HOST, then flushes.
// usage: node send.mjs HOST WRITE_KEY OPTIONS_JSON ; exit 1 on any error the library reports
import { Analytics } from '@segment/analytics-node'

const [host, writeKey, optionsJson] = process.argv.slice(2)
const analytics = new Analytics({ writeKey, host, maxRetries: 1, ...JSON.parse(optionsJson || '{}') })
const errors = []
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))

const context = { timezone: 'America/New_York', device: { token: 'apns-node' } }
analytics.identify({ userId: 'noa', traits: { email: 'noa@example.com' }, context })
analytics.track({ userId: 'noa', event: 'Product Added', properties: { product_id: 'p9', price: 30, quantity: 2 } })
analytics.page({ userId: 'noa', category: 'Shop', name: 'Cart', properties: { url: 'https://shop.example/cart' } })
analytics.screen({ userId: 'noa', name: 'Home' })
analytics.group({ userId: 'noa', groupId: 'g9', traits: { name: 'Initech' } })
analytics.alias({ userId: 'noa', previousId: 'noa-before' })
analytics.track({ anonymousId: 'visitor-9', event: 'cart_add', properties: { value: 25 } })
analytics.track({ userId: 'noa', event: 'Order Completed', properties: { order_id: 'o9', revenue: 60 } })
await analytics.closeAndFlush({ timeout: 10000 })
if (errors.length) {
  console.error(errors.join('\n'))
  process.exit(1)
}
