// Generated from supabase/migrations by `npm run gen:types` (supabase gen types typescript,
// schema public). Do not edit: change the migrations and regenerate; npm test fails when this
// file is stale.

export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[];

export type Database = {
  'public': {
    Tables: {
      'job_attempts': {
        Row: {
          'attempt': number;
          'claimed_at': string;
          'ended_at': string | null;
          'error': Json | null;
          'job_id': string;
          'outcome': string | null;
          'ready_at': string;
          'retried': boolean | null;
          'run': number;
          'started_at': string | null;
          'steps': NonNullable<Json>;
          'user_id': string;
          'worker_id': string | null;
        };
        ComputedFields: never;
        Insert: {
          'attempt': number;
          'claimed_at': string;
          'ended_at'?: string | null;
          'error'?: Json | null;
          'job_id': string;
          'outcome'?: string | null;
          'ready_at': string;
          'retried'?: boolean | null;
          'run': number;
          'started_at'?: string | null;
          'steps'?: NonNullable<Json>;
          'user_id': string;
          'worker_id'?: string | null;
        };
        Update: {
          'attempt'?: number;
          'claimed_at'?: string;
          'ended_at'?: string | null;
          'error'?: Json | null;
          'job_id'?: string;
          'outcome'?: string | null;
          'ready_at'?: string;
          'retried'?: boolean | null;
          'run'?: number;
          'started_at'?: string | null;
          'steps'?: NonNullable<Json>;
          'user_id'?: string;
          'worker_id'?: string | null;
        };
        Relationships: [
          {
            foreignKeyName: 'job_attempts_job_id_fkey';
            columns: ['job_id'];
            isOneToOne: false;
            referencedRelation: 'jobs';
            referencedColumns: ['id'];
          },
        ];
      };
      'jobs': {
        Row: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        ComputedFields: never;
        Insert: {
          'attempts'?: number;
          'cpu_ms'?: number;
          'created_at'?: string;
          'dependency_outputs'?: Json | null;
          'error'?: Json | null;
          'external_id'?: string | null;
          'external_provider'?: string | null;
          'fair_at'?: string;
          'finished_at'?: string | null;
          'has_dependents'?: boolean;
          'history'?: NonNullable<Json>;
          'id'?: string;
          'idempotency_key'?: string | null;
          'input'?: NonNullable<Json>;
          'lease_expires_at'?: string | null;
          'lease_token'?: string | null;
          'max_attempts'?: number;
          'output'?: Json | null;
          'parent_id'?: string | null;
          'priority'?: number;
          'progress'?: number;
          'route'?: string | null;
          'run_at'?: string;
          'started_at'?: string | null;
          'status'?: Database['public']['Enums']['job_status'];
          'step'?: string | null;
          'timeout_at'?: string | null;
          'type': string;
          'updated_at'?: string;
          'user_id': string;
          'worker_id'?: string | null;
        };
        Update: {
          'attempts'?: number;
          'cpu_ms'?: number;
          'created_at'?: string;
          'dependency_outputs'?: Json | null;
          'error'?: Json | null;
          'external_id'?: string | null;
          'external_provider'?: string | null;
          'fair_at'?: string;
          'finished_at'?: string | null;
          'has_dependents'?: boolean;
          'history'?: NonNullable<Json>;
          'id'?: string;
          'idempotency_key'?: string | null;
          'input'?: NonNullable<Json>;
          'lease_expires_at'?: string | null;
          'lease_token'?: string | null;
          'max_attempts'?: number;
          'output'?: Json | null;
          'parent_id'?: string | null;
          'priority'?: number;
          'progress'?: number;
          'route'?: string | null;
          'run_at'?: string;
          'started_at'?: string | null;
          'status'?: Database['public']['Enums']['job_status'];
          'step'?: string | null;
          'timeout_at'?: string | null;
          'type'?: string;
          'updated_at'?: string;
          'user_id'?: string;
          'worker_id'?: string | null;
        };
        Relationships: [
          {
            foreignKeyName: 'jobs_parent_id_fkey';
            columns: ['parent_id'];
            isOneToOne: false;
            referencedRelation: 'jobs';
            referencedColumns: ['id'];
          },
        ];
      };
      'notifications': {
        Row: {
          'created_at': string;
          'id': string;
          'job_id': string;
          'job_type': string;
          'message': string;
          'read_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'user_id': string;
        };
        ComputedFields: never;
        Insert: {
          'created_at'?: string;
          'id'?: string;
          'job_id': string;
          'job_type': string;
          'message': string;
          'read_at'?: string | null;
          'status': Database['public']['Enums']['job_status'];
          'user_id': string;
        };
        Update: {
          'created_at'?: string;
          'id'?: string;
          'job_id'?: string;
          'job_type'?: string;
          'message'?: string;
          'read_at'?: string | null;
          'status'?: Database['public']['Enums']['job_status'];
          'user_id'?: string;
        };
        Relationships: [];
      };
      'schedules': {
        Row: {
          'catch_up': string;
          'created_at': string;
          'cron': string | null;
          'every': string | null;
          'id': string;
          'input': NonNullable<Json>;
          'last_error': Json | null;
          'last_job_id': string | null;
          'last_run_at': string | null;
          'name': string | null;
          'next_run_at': string | null;
          'paused': boolean;
          'project_wide': boolean;
          'starts_at': string;
          'timezone': string;
          'type': string;
          'updated_at': string;
          'user_id': string;
        };
        ComputedFields: never;
        Insert: {
          'catch_up'?: string;
          'created_at'?: string;
          'cron'?: string | null;
          'every'?: string | null;
          'id'?: string;
          'input'?: NonNullable<Json>;
          'last_error'?: Json | null;
          'last_job_id'?: string | null;
          'last_run_at'?: string | null;
          'name'?: string | null;
          'next_run_at'?: string | null;
          'paused'?: boolean;
          'project_wide'?: boolean;
          'starts_at'?: string;
          'timezone'?: string;
          'type': string;
          'updated_at'?: string;
          'user_id': string;
        };
        Update: {
          'catch_up'?: string;
          'created_at'?: string;
          'cron'?: string | null;
          'every'?: string | null;
          'id'?: string;
          'input'?: NonNullable<Json>;
          'last_error'?: Json | null;
          'last_job_id'?: string | null;
          'last_run_at'?: string | null;
          'name'?: string | null;
          'next_run_at'?: string | null;
          'paused'?: boolean;
          'project_wide'?: boolean;
          'starts_at'?: string;
          'timezone'?: string;
          'type'?: string;
          'updated_at'?: string;
          'user_id'?: string;
        };
        Relationships: [];
      };
    };
    Views: {
      [_ in never]: never;
    };
    Functions: {
      'await_job': {
        Args: {
          'p_external_id': string;
          'p_id': string;
          'p_lease_token': string;
          'p_provider': string;
          'p_timeout_seconds'?: number;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'cancel_job': {
        Args: { 'p_id': string };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'cancel_jobs': {
        Args: {
          'p_created_before'?: string;
          'p_created_from'?: string;
          'p_dry_run'?: boolean;
          'p_parent_id'?: string;
          'p_search'?: string;
          'p_statuses'?: (Database['public']['Enums']['job_status'])[];
          'p_types'?: (string)[];
          'p_user_id'?: string;
        };
        Returns: Json;
      };
      'cheapest_pending_cpu': { Args: { 'p_types': (string)[] }; Returns: number };
      'claim_jobs': {
        Args: {
          'p_cpu_budget_ms'?: number;
          'p_lease_seconds'?: number;
          'p_limit'?: number;
          'p_types'?: (string)[];
          'p_worker_id': string;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        }[];
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: false;
          isSetofReturn: true;
        };
      };
      'claim_waiting_polls': {
        Args: { 'p_limit'?: number; 'p_provider': string };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        }[];
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: false;
          isSetofReturn: true;
        };
      };
      'complete_job': {
        Args: { 'p_id': string; 'p_lease_token': string; 'p_output'?: Json };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'complete_jobs': { Args: { 'p_results': Json }; Returns: string[] };
      'count_input_jobs': { Args: { 'p_path': string; 'p_user_id': string }; Returns: number };
      'count_unread_notifications': { Args: Record<PropertyKey, never>; Returns: number };
      'create_flow': {
        Args: {
          'p_children'?: Json;
          'p_depends_on'?: (string)[];
          'p_idempotency_key'?: string;
          'p_input'?: Json;
          'p_on_dependency_failure'?: string;
          'p_policy'?: string;
          'p_type': string;
          'p_user_id': string;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        }[];
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: false;
          isSetofReturn: true;
        };
      };
      'create_job': {
        Args: {
          'p_cpu_ms'?: number;
          'p_idempotency_key'?: string;
          'p_input'?: Json;
          'p_max_attempts'?: number;
          'p_parent_id'?: string;
          'p_priority'?: number;
          'p_route'?: string;
          'p_run_at'?: string;
          'p_type': string;
          'p_user_id': string;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'create_jobs': {
        Args: { 'p_jobs': Json };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        }[];
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: false;
          isSetofReturn: true;
        };
      };
      'create_schedule': {
        Args: {
          'p_catch_up'?: string;
          'p_cron'?: string;
          'p_every'?: string;
          'p_input'?: Json;
          'p_name'?: string;
          'p_project_wide'?: boolean;
          'p_start_at'?: string;
          'p_timezone'?: string;
          'p_type': string;
          'p_user_id': string;
        };
        Returns: {
          'catch_up': string;
          'created_at': string;
          'cron': string | null;
          'every': string | null;
          'id': string;
          'input': NonNullable<Json>;
          'last_error': Json | null;
          'last_job_id': string | null;
          'last_run_at': string | null;
          'name': string | null;
          'next_run_at': string | null;
          'paused': boolean;
          'project_wide': boolean;
          'starts_at': string;
          'timezone': string;
          'type': string;
          'updated_at': string;
          'user_id': string;
        };
        SetofOptions: {
          from: '*';
          to: 'schedules';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'delete_schedule': {
        Args: { 'p_id': string };
        Returns: {
          'catch_up': string;
          'created_at': string;
          'cron': string | null;
          'every': string | null;
          'id': string;
          'input': NonNullable<Json>;
          'last_error': Json | null;
          'last_job_id': string | null;
          'last_run_at': string | null;
          'name': string | null;
          'next_run_at': string | null;
          'paused': boolean;
          'project_wide': boolean;
          'starts_at': string;
          'timezone': string;
          'type': string;
          'updated_at': string;
          'user_id': string;
        };
        SetofOptions: {
          from: '*';
          to: 'schedules';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'fail_job': {
        Args: { 'p_error': Json; 'p_id': string; 'p_lease_token': string; 'p_retryable'?: boolean };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'get_job_run': { Args: { 'p_id': string }; Returns: Json };
      'get_queue_stats': { Args: { 'p_window'?: string }; Returns: Json };
      'heartbeat_job': {
        Args: {
          'p_id': string;
          'p_lease_seconds'?: number;
          'p_lease_token': string;
          'p_progress'?: number;
          'p_step'?: string;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'job_position': { Args: { 'p_id': string }; Returns: Json };
      'job_series': {
        Args: { 'p_minutes'?: number };
        Returns: {
          'finished': number;
          'minute': string;
          'run_p50_ms': number;
          'run_p95_ms': number;
          'status': Database['public']['Enums']['job_status'];
          'type': string;
          'wait_p50_ms': number;
        }[];
      };
      'job_type_stats': {
        Args: Record<PropertyKey, never>;
        Returns: {
          'max_attempts': number;
          'max_running': number;
          'pending': number;
          'priority': number;
          'rate_per_minute': number;
          'retention_done': string;
          'retention_failed': string;
          'running': number;
          'started_last_minute': number;
          'timeout_seconds': number;
          'type': string;
        }[];
      };
      'list_jobs': {
        Args: {
          'p_created_before'?: string;
          'p_created_from'?: string;
          'p_cursor_created_at'?: string;
          'p_cursor_id'?: string;
          'p_limit'?: number;
          'p_parent_id'?: string;
          'p_search'?: string;
          'p_statuses'?: (Database['public']['Enums']['job_status'])[];
          'p_types'?: (string)[];
          'p_user_id'?: string;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        }[];
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: false;
          isSetofReturn: true;
        };
      };
      'mark_notifications_read': { Args: { 'p_ids'?: (string)[] }; Returns: number };
      'pause_schedule': {
        Args: { 'p_id': string };
        Returns: {
          'catch_up': string;
          'created_at': string;
          'cron': string | null;
          'every': string | null;
          'id': string;
          'input': NonNullable<Json>;
          'last_error': Json | null;
          'last_job_id': string | null;
          'last_run_at': string | null;
          'name': string | null;
          'next_run_at': string | null;
          'paused': boolean;
          'project_wide': boolean;
          'starts_at': string;
          'timezone': string;
          'type': string;
          'updated_at': string;
          'user_id': string;
        };
        SetofOptions: {
          from: '*';
          to: 'schedules';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'preview_schedule': {
        Args: {
          'p_after'?: string;
          'p_count'?: number;
          'p_cron'?: string;
          'p_every'?: string;
          'p_start_at'?: string;
          'p_timezone'?: string;
        };
        Returns: (string)[];
      };
      'prune_jobs': { Args: { 'p_limit'?: number }; Returns: number };
      'queue_diagnosis': { Args: Record<PropertyKey, never>; Returns: Json };
      'rescue_jobs': { Args: Record<PropertyKey, never>; Returns: number };
      'resume_job': {
        Args: {
          'p_error'?: Json;
          'p_external_id': string;
          'p_outcome': string;
          'p_output'?: Json;
          'p_provider': string;
        };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'resume_schedule': {
        Args: { 'p_id': string };
        Returns: {
          'catch_up': string;
          'created_at': string;
          'cron': string | null;
          'every': string | null;
          'id': string;
          'input': NonNullable<Json>;
          'last_error': Json | null;
          'last_job_id': string | null;
          'last_run_at': string | null;
          'name': string | null;
          'next_run_at': string | null;
          'paused': boolean;
          'project_wide': boolean;
          'starts_at': string;
          'timezone': string;
          'type': string;
          'updated_at': string;
          'user_id': string;
        };
        SetofOptions: {
          from: '*';
          to: 'schedules';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'retry_job': {
        Args: { 'p_id': string };
        Returns: {
          'attempts': number;
          'cpu_ms': number;
          'created_at': string;
          'dependency_outputs': Json | null;
          'error': Json | null;
          'external_id': string | null;
          'external_provider': string | null;
          'fair_at': string;
          'finished_at': string | null;
          'has_dependents': boolean;
          'history': NonNullable<Json>;
          'id': string;
          'idempotency_key': string | null;
          'input': NonNullable<Json>;
          'lease_expires_at': string | null;
          'lease_token': string | null;
          'max_attempts': number;
          'output': Json | null;
          'parent_id': string | null;
          'priority': number;
          'progress': number;
          'route': string | null;
          'run_at': string;
          'started_at': string | null;
          'status': Database['public']['Enums']['job_status'];
          'step': string | null;
          'timeout_at': string | null;
          'type': string;
          'updated_at': string;
          'user_id': string;
          'worker_id': string | null;
        };
        SetofOptions: {
          from: '*';
          to: 'jobs';
          isOneToOne: true;
          isSetofReturn: false;
        };
      };
      'retry_jobs': {
        Args: {
          'p_created_before'?: string;
          'p_created_from'?: string;
          'p_dry_run'?: boolean;
          'p_parent_id'?: string;
          'p_search'?: string;
          'p_statuses'?: (Database['public']['Enums']['job_status'])[];
          'p_types'?: (string)[];
          'p_user_id'?: string;
        };
        Returns: Json;
      };
    };
    Enums: {
      'job_status': 'pending' | 'running' | 'waiting' | 'done' | 'failed' | 'cancelled';
    };
    CompositeTypes: {
      [_ in never]: never;
    };
  };
};

type DatabaseWithoutInternals = Omit<Database, '__InternalSupabase'>;

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, 'public'>];

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema['Tables'] & DefaultSchema['Views'])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof (
      & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Tables']
      & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Views']
    )
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals } ? (
    & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Tables']
    & DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Views']
  )[TableName] extends {
    Row: infer R;
  } ? R
  : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema['Tables'] & DefaultSchema['Views'])
    ? (DefaultSchema['Tables'] & DefaultSchema['Views'])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R;
    } ? R
    : never
  : never;

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema['Tables']
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Tables']
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Tables'][TableName] extends
    {
      Insert: infer I;
    } ? I
  : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema['Tables']
    ? DefaultSchema['Tables'][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I;
    } ? I
    : never
  : never;

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema['Tables']
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Tables']
    : never = never,
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions['schema']]['Tables'][TableName] extends
    {
      Update: infer U;
    } ? U
  : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema['Tables']
    ? DefaultSchema['Tables'][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U;
    } ? U
    : never
  : never;

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema['Enums']
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions['schema']]['Enums']
    : never = never,
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions['schema']]['Enums'][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema['Enums']
    ? DefaultSchema['Enums'][DefaultSchemaEnumNameOrOptions]
  : never;

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema['CompositeTypes']
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals;
  } ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions['schema']]['CompositeTypes']
    : never = never,
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions['schema']]['CompositeTypes'][
    CompositeTypeName
  ]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema['CompositeTypes']
    ? DefaultSchema['CompositeTypes'][PublicCompositeTypeNameOrOptions]
  : never;

export const Constants = {
  'public': {
    Enums: {
      'job_status': ['pending', 'running', 'waiting', 'done', 'failed', 'cancelled'],
    },
  },
} as const;
