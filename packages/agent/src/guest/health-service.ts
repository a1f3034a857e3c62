import { EventEmitter } from 'node:events'
import { type ServerUnaryCall, type ServerWritableStream, type sendUnaryData, status } from '@grpc/grpc-js'
import {
  type HealthCheckRequest,
  HealthCheckResponse,
  type HealthServer,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../generated/grpc/health/v1/health.js'

/**
 * grpc.health.v1 for the agent. The overall service ("") turns SERVING once the guest's root is
 * mounted and commands can run; the host waits on Watch, never on a sleep.
 */
export class HealthStatus extends EventEmitter<{ change: [] }> {
  private readonly statuses = new Map<string, ServingStatus>([['', ServingStatus.NOT_SERVING]])

  set(service: string, value: ServingStatus): void {
    this.statuses.set(service, value)
    this.emit('change')
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service)
  }

  service(): HealthServer {
    return {
      check: (
        call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
        callback: sendUnaryData<HealthCheckResponse>,
      ) => {
        const value = this.get(call.request.service)
        if (value === undefined)
          callback({ code: status.NOT_FOUND, details: `unknown service ${call.request.service}` })
        else callback(null, HealthCheckResponse.fromPartial({ status: value }))
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        let last: ServingStatus | undefined
        const push = () => {
          const value = this.get(call.request.service) ?? ServingStatus.SERVICE_UNKNOWN
          if (value === last) return
          last = value
          call.write(HealthCheckResponse.fromPartial({ status: value }))
        }
        push()
        this.on('change', push)
        call.on('cancelled', () => this.off('change', push))
        call.on('close', () => this.off('change', push))
      },
    }
  }
}
