variable "region" {
  description = "AWS region for the benchmark host."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Name given to the instance, its security group and its IAM role."
  type        = string
  default     = "embbench"

  validation {
    condition     = can(regex("^[A-Za-z0-9-]{1,40}$", var.name))
    error_message = "name must be 1 to 40 letters, digits or hyphens."
  }
}

variable "instance_type" {
  description = "EC2 instance type. The reference host is c7i.4xlarge (8 Sapphire Rapids cores, 16 vCPUs, 32 GiB)."
  type        = string
  default     = "c7i.4xlarge"
}

variable "allowed_ssh_cidr" {
  description = "The one IPv4 CIDR allowed to reach SSH (port 22), e.g. \"203.0.113.7/32\". No default: it must be your address."
  type        = string

  validation {
    condition     = can(cidrnetmask(var.allowed_ssh_cidr))
    error_message = "allowed_ssh_cidr must be an IPv4 CIDR such as \"203.0.113.7/32\"."
  }

  validation {
    condition     = !can(cidrnetmask(var.allowed_ssh_cidr)) || !endswith(var.allowed_ssh_cidr, "/0")
    error_message = "allowed_ssh_cidr must not open SSH to the whole internet (/0): give your own address, e.g. \"203.0.113.7/32\"."
  }
}

variable "key_name" {
  description = "Name of an existing EC2 key pair in the region, for SSH as the ubuntu user."
  type        = string

  validation {
    condition     = length(var.key_name) > 0
    error_message = "key_name must name an existing EC2 key pair."
  }
}

variable "subnet_id" {
  description = "Subnet to launch in (it must give public IPs). Default: a subnet of the region's default VPC."
  type        = string
  default     = null
}

variable "root_volume_size_gb" {
  description = "Root volume size in GB (gp3, encrypted). Images, converted models and the Hugging Face cache live here."
  type        = number
  default     = 100

  validation {
    condition     = var.root_volume_size_gb >= 50
    error_message = "root_volume_size_gb must be at least 50: the images and the converted models alone take about 40 GB."
  }
}

variable "repo_url" {
  description = "HTTPS URL of the embbench repository the host clones."
  type        = string

  validation {
    condition     = can(regex("^https://", var.repo_url))
    error_message = "repo_url must be an https:// URL (the security group lets out only HTTP and HTTPS)."
  }
}

variable "git_ref" {
  description = "Branch, tag or commit of repo_url to check out."
  type        = string
  default     = "main"
}

variable "max_hours" {
  description = "Cost guard: the instance halts, and so terminates, this many hours after its first boot. Results not brought home by then are lost."
  type        = number
  default     = 16

  validation {
    condition     = var.max_hours >= 1 && var.max_hours <= 72 && floor(var.max_hours) == var.max_hours
    error_message = "max_hours must be a whole number of hours from 1 to 72."
  }
}

variable "autorun" {
  description = "Start `./embbench all` in a tmux session named embbench as soon as the host is set up."
  type        = bool
  default     = false
}

variable "use_spot" {
  description = "Run as a one-time spot instance (cheaper; AWS may reclaim it mid-run, which ends the run)."
  type        = bool
  default     = false
}

variable "spot_max_price" {
  description = "Highest hourly spot price in USD, as a string (e.g. \"0.40\"). Default: up to the on-demand price."
  type        = string
  default     = null
}

variable "results_bucket" {
  description = "Optional: name of an existing S3 bucket. When set, the host may write under s3://<bucket>/<results_prefix>, and an autorun uploads its run folder there."
  type        = string
  default     = ""
}

variable "results_prefix" {
  description = "Key prefix for uploads to results_bucket."
  type        = string
  default     = "embbench/"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]*/$", var.results_prefix))
    error_message = "results_prefix must end with \"/\" and use only letters, digits, '.', '_', '-' and '/'."
  }
}

variable "hf_token_parameter" {
  description = "Optional: name of an SSM Parameter Store SecureString holding HF_TOKEN (e.g. \"/embbench/hf_token\"). The host reads it into a root-only env file; it never appears in user data or logs."
  type        = string
  default     = ""

  validation {
    condition     = var.hf_token_parameter == "" || can(regex("^/?[A-Za-z0-9_.\\-/]+$", var.hf_token_parameter))
    error_message = "hf_token_parameter must be an SSM parameter name such as \"/embbench/hf_token\"."
  }
}

variable "hf_token_kms_key_arn" {
  description = "Optional: ARN of the customer-managed KMS key that encrypts hf_token_parameter. Leave null for the default aws/ssm key."
  type        = string
  default     = null
}

variable "enable_ssm_session" {
  description = "Attach AmazonSSMManagedInstanceCore so `aws ssm start-session` works (no open port needed)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}
